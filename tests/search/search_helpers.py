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
