"""Test helpers shared by tests/search and tests/reliability: the tiny space and the fold-fit
event log checks (importable as ``run_helpers``: tests/ is on the path through its conftest)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

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


def tiny_space(folder: Path) -> Path:
    """Writes the tiny space file into ``folder`` and returns its path."""
    path = Path(folder) / "tiny_space.toml"
    path.write_text(TINY_SPACE)
    return path


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
