"""The shared Kaggle training images (slow; skipped when ../shared/data/chest_xray is absent)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

REAL_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "chest_xray"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (REAL_DATA / "train").is_dir(),
                       reason=f"real data not found at {REAL_DATA} (see ../shared/data/README.md)"),
]


def test_real_training_set(tmp_path):
    from data_pipeline import load_dataset, make_folds, split_train_test

    ds = load_dataset(REAL_DATA, image_size=32, cache_dir=tmp_path, progress=False)
    assert len(ds.y) == 5216 and ds.skipped == []
    assert ds.class_names == ["NORMAL", "PNEUMONIA"]
    assert int((ds.y == 0).sum()) == 1341 and int((ds.y == 1).sum()) == 3875
    assert len(np.unique(ds.groups[ds.y == 1])) == 1635
    assert len(np.unique(ds.groups[ds.y == 0])) == 1211
    assert sum(len(s) - 1 for s in ds.duplicate_sets) == 26
    for dup in ds.duplicate_sets:  # each duplicate set sits in one group
        assert len({ds.groups[ds.paths.index(p)] for p in dup}) == 1

    start = time.perf_counter()
    again = load_dataset(REAL_DATA, image_size=32, cache_dir=tmp_path, progress=False)
    assert time.perf_counter() - start < 1.0 and np.array_equal(again.x, ds.x)

    split = split_train_test(ds, seed=42)
    assert split.source == "carved"
    assert not set(ds.groups[split.train_idx]) & set(ds.groups[split.test_idx])
    assert abs(len(split.test_idx) / len(ds.y) - 0.15) < 0.01
    tr = split.train_idx
    whole = ds.y[tr].mean()
    for a, b in make_folds(ds.y[tr], ds.groups[tr], 5, seed=42):
        assert not set(ds.groups[tr][a]) & set(ds.groups[tr][b])
        assert abs(ds.y[tr][b].mean() - whole) <= 0.03
