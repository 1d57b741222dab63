"""Helpers shared by the search tests: a tiny space, configs and subprocess runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from run_helpers import TINY_SPACE, assert_no_refit, fit_events, tiny_space  # noqa: F401

from search.config import SearchConfig

REPO = Path(__file__).resolve().parents[2]


def tiny_dense_model():
    """A compiled one-layer model on 4 inputs (stub hypermodels of the fold-fit tests)."""
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy")
    return model


def tiny_config(tmp_path: Path, data: Path, **overrides) -> SearchConfig:
    values = dict(data=str(data), model="ann", tuner="random", folds=2, max_trials=2,
                  max_epochs=2, patience=3, image_size=16, seed=3, quiet=True,
                  space_file=str(tiny_space(tmp_path)), run_dir=str(tmp_path / "run"),
                  # Tests of other behaviours count trials and folds; the ladder has its
                  # own tests (tests/search/test_ladder.py).
                  ladder=False)
    values.update(overrides)
    return SearchConfig(**values)


def cli_args(tmp_path: Path, data: Path, *extra: str) -> list[str]:
    return ["search", "--data", str(data), "--model", "ann", "--tuner", "random", "--folds", "2",
            "--max-trials", "3", "--max-epochs", "2", "--image-size", "16", "--seed", "5",
            "--space", str(tiny_space(tmp_path)), "--run-dir", str(tmp_path / "run"), "--quiet",
            "--no-ladder",
            *extra]


def run_cli(args: list[str], env_extra: dict | None = None, timeout: float = 240):
    env = dict(os.environ)
    env.update({"PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"})
    env.pop("CXR_TEST_KILL_AT", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "search", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def cv_records(family_dir: Path) -> dict[str, dict]:
    out = {}
    for p in sorted(Path(family_dir).glob("trial_*/cv.json")):
        out[p.parent.name] = json.loads(p.read_text())
    return out


def toy_oracle(tuner: str, folder: Path, *, max_trials: int = 10):
    """A capped oracle (search.tuners.oracles.make_oracle) over one float dimension ``x``,
    saving its trials under ``folder``: for the tests that end trials by hand."""
    import keras_tuner as kt

    from search.tuners.oracles import make_oracle

    hp = kt.HyperParameters()
    hp.Float("x", 0.0, 1.0, default=0.5)
    oracle = make_oracle(tuner, objective="val_auc", direction="max", max_trials=max_trials,
                         max_epochs=2, seed=1, family="cnn")
    oracle.hyperparameters, oracle._display.verbose = hp, 0
    oracle._set_project_dir(str(folder), "p")
    return oracle


def finish_trial(oracle, metrics: dict, **values):
    """Creates the oracle's next trial (``values`` added to its hyperparameters, e.g. a
    Hyperband ``tuner/trial_id``), reports ``metrics`` and ends it as completed."""
    trial = oracle.create_trial("tuner0")
    trial.hyperparameters.values.update(values)
    oracle.update_trial(trial.trial_id, metrics)
    trial.status = "COMPLETED"
    oracle.end_trial(trial)
    return trial
