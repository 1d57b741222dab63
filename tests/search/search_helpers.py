"""Helpers shared by the search tests: a tiny space, configs and subprocess runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from search.config import SearchConfig

REPO = Path(__file__).resolve().parents[2]

# Small, always-valid models so trial counts are not disturbed by over-budget failures.
TINY_SPACE = """
[common]
batch_size = 32
augmentation = false
lr_schedule = "constant"
learning_rate = {min = 1e-3, max = 1e-2, sampling = "log"}
[ann]
dense_layers = {min = 1, max = 2}
dense_units = {min = 16, max = 64}
dense_batch_norm = "none"
[cnn]
conv_blocks = {min = 1, max = 2}
conv_filters = {min = 8, max = 16}
convs_per_block = 1
head = "global_average"
dense_layers = {min = 0, max = 1}
dense_units = {min = 32, max = 64}
"""


def tiny_space(tmp_path: Path) -> Path:
    path = tmp_path / "tiny_space.toml"
    path.write_text(TINY_SPACE)
    return path


def tiny_config(tmp_path: Path, data: Path, **overrides) -> SearchConfig:
    values = dict(data=str(data), model="ann", tuner="random", folds=2, max_trials=2,
                  max_epochs=2, patience=3, image_size=16, seed=3, quiet=True,
                  space_file=str(tiny_space(tmp_path)), run_dir=str(tmp_path / "run"),
                  # Tests of other behaviours count trials and folds; racing has its own tests.
                  racing=False)
    values.update(overrides)
    return SearchConfig(**values)


def cli_args(tmp_path: Path, data: Path, *extra: str) -> list[str]:
    return ["search", "--data", str(data), "--model", "ann", "--tuner", "random", "--folds", "2",
            "--max-trials", "3", "--max-epochs", "2", "--image-size", "16", "--seed", "5",
            "--space", str(tiny_space(tmp_path)), "--run-dir", str(tmp_path / "run"), "--quiet",
            "--no-racing",
            *extra]


def run_cli(args: list[str], env_extra: dict | None = None, timeout: float = 240):
    env = dict(os.environ)
    env.update({"PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"})
    env.pop("CXR_TEST_KILL_AT", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "search", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def fit_events(family_dir: Path) -> list[dict]:
    path = Path(family_dir) / "fits.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def assert_no_refit(family_dir: Path) -> None:
    """Every (trial, fold) finished at most once, and was never started again after finishing."""
    finished: set = set()
    ends: Counter = Counter()
    for ev in fit_events(family_dir):
        key = (ev["trial_id"], ev["fold"])
        assert key not in finished, f"fold {key} trained again after it had finished"
        if ev["event"] == "end":
            finished.add(key)
            ends[key] += 1
    assert all(n == 1 for n in ends.values())


def cv_records(family_dir: Path) -> dict[str, dict]:
    out = {}
    for p in sorted(Path(family_dir).glob("trial_*/cv.json")):
        out[p.parent.name] = json.loads(p.read_text())
    return out
