"""Fold and test-split properties: grouping, coverage, stratification, determinism, records."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from data_pipeline import DataError, load_split, make_folds, save_split, split_train_test
from data_pipeline.folds import grouped_holdout


def realistic_labels(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and groups shaped like the Kaggle train set: 1211 NORMAL groups (1-2 images),
    1635 PNEUMONIA patients (1-30 images, skewed), about 5200 images."""
    rng = np.random.default_rng(seed)
    y, g = [], []
    for i in range(1211):
        n = 1 + (rng.random() < 0.1)
        y += [0] * n
        g += [f"NORMAL/IM-{i}"] * n
    for i in range(1635):
        n = int(min(30, 1 + rng.geometric(0.5)))
        y += [1] * n
        g += [f"PNEUMONIA/person{i}"] * n
    return np.array(y), np.array(g)


@pytest.fixture(scope="module")
def labels():
    return realistic_labels()


@pytest.mark.parametrize("k", [3, 5])
def test_fold_properties(labels, k):
    y, g = labels
    folds = make_folds(y, g, k, seed=42)
    assert len(folds) == k
    whole = y.mean()
    seen = np.zeros(len(y), int)
    for tr, va in folds:
        assert not set(g[tr]) & set(g[va])  # no patient on both sides
        assert len(tr) + len(va) == len(y) and not set(tr) & set(va)
        assert abs(y[va].mean() - whole) <= 0.03 and abs(y[tr].mean() - whole) <= 0.03
        seen[va] += 1
    assert (seen == 1).all()  # every image validated exactly once


def test_folds_deterministic_by_seed(labels):
    y, g = labels
    a, b, c = (make_folds(y, g, 3, s) for s in (1, 1, 2))
    assert all(np.array_equal(x[1], z[1]) for x, z in zip(a, b))
    assert not all(np.array_equal(x[1], z[1]) for x, z in zip(a, c))


def test_k1_is_grouped_stratified_holdout(labels):
    y, g = labels
    [(tr, va)] = make_folds(y, g, 1, seed=3)
    assert not set(g[tr]) & set(g[va]) and len(tr) + len(va) == len(y)
    assert abs(len(va) / len(y) - 0.2) < 0.02 and abs(y[va].mean() - y.mean()) <= 0.03
    assert np.array_equal(make_folds(y, g, 1, seed=3)[0][1], va)


def test_too_few_patients_for_folds():
    y = np.array([0, 0, 0, 1, 1, 1, 1])
    g = np.array(["a", "a", "b", "c", "d", "e", "f"])
    make_folds(y, g, 2, seed=0)
    with pytest.raises(DataError, match="class 'label 0' has 2 patient.*--folds 3"):
        make_folds(y, g, 3, seed=0)
    with pytest.raises(DataError, match="integer >= 1"):
        make_folds(y, g, 0, seed=0)


def test_grouped_holdout_fraction(labels):
    y, g = labels
    keep, hold = grouped_holdout(y, g, 0.15, seed=9)
    assert abs(len(hold) / len(y) - 0.15) < 0.01
    for c in (0, 1):
        assert abs(np.mean(y[hold] == c) - np.mean(y == c)) <= 0.03


def test_carved_test_split(synthetic_dataset, tmp_path):
    ds = synthetic_dataset
    split = split_train_test(ds, test_fraction=0.2, seed=11)
    assert split.source == "carved"
    assert not set(ds.groups[split.train_idx]) & set(ds.groups[split.test_idx])
    assert len(split.train_idx) + len(split.test_idx) == len(ds.y)
    assert set(ds.y[split.test_idx]) == {0, 1}
    again = split_train_test(ds, test_fraction=0.2, seed=11)
    assert np.array_equal(again.test_idx, split.test_idx)
    path = tmp_path / "run" / "split.json"
    save_split(split, ds, path)
    record = json.loads(path.read_text())
    assert record["source"] == "carved" and record["seed"] == 11 and record["test_fraction"] == 0.2
    assert all(p.startswith("train/") for p in record["test"])
    loaded = load_split(path, ds)
    assert np.array_equal(loaded.test_idx, split.test_idx)
    assert np.array_equal(loaded.train_idx, split.train_idx)


def test_test_folder_split_excludes_val(tmp_path, cache_dir):
    from data_pipeline import generate_synthetic, load_dataset

    root = generate_synthetic(tmp_path / "k", seed=2, n_normal_patients=4, n_pneumonia_patients=6,
                              images_per_patient=(1, 2), image_size=24, splits=("train", "test", "val"))
    ds = load_dataset(root, image_size=16, cache_dir=cache_dir, progress=False)
    split = split_train_test(ds)
    assert split.source == "test_folder"
    assert set(ds.origin[split.test_idx]) == {"test"} and set(ds.origin[split.train_idx]) == {"train"}
    save_split(split, ds, tmp_path / "split.json")
    loaded = load_split(tmp_path / "split.json", ds)
    assert not (ds.origin[loaded.train_idx] == "val").any()
    assert np.array_equal(loaded.test_idx, split.test_idx)


def test_split_errors(synthetic_dataset, tmp_path):
    with pytest.raises(DataError, match="--test-fraction 1.5"):
        split_train_test(synthetic_dataset, test_fraction=1.5)
    with pytest.raises(DataError, match="does not exist"):
        load_split(tmp_path / "nope.json", synthetic_dataset)
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(DataError, match="not a valid split record"):
        load_split(bad, synthetic_dataset)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"source": "carved", "seed": 1, "test_fraction": 0.1,
                                 "test": ["train/X/elsewhere.jpeg"]}))
    with pytest.raises(DataError, match="belongs to other data"):
        load_split(other, synthetic_dataset)


def _leaky_tree(root):
    """train/ of 4+4 patients; test/ holds another film of train patient IM-0001 and a renamed
    byte-identical copy of a train PNEUMONIA file, plus one new patient per class."""
    import shutil

    from dp_helpers import write_image

    for i in range(1, 5):
        write_image(root / "train/NORMAL" / f"IM-{i:04d}-0001.png", size=16, seed=i)
        write_image(root / "train/PNEUMONIA" / f"person{i}_bacteria_{i}.png", size=16, seed=10 + i)
    write_image(root / "test/NORMAL/IM-0001-0002.png", size=16, seed=20)  # same patient
    write_image(root / "test/NORMAL/IM-0050-0001.png", size=16, seed=21)
    write_image(root / "test/PNEUMONIA/person60_virus_60.png", size=16, seed=22)
    shutil.copyfile(root / "train/PNEUMONIA/person2_bacteria_2.png",
                    root / "test/PNEUMONIA/scan_copy.png")  # same bytes, unparsed name
    return root


def test_test_folder_patients_are_dropped_from_train(tmp_path, cache_dir, caplog):
    from data_pipeline import load_dataset

    ds = load_dataset(_leaky_tree(tmp_path / "d"), image_size=16, cache_dir=cache_dir,
                      progress=False)
    # Groups carry the class folder, not the split folder: one patient, one id across splits.
    by_path = dict(zip(ds.paths, ds.groups))
    assert by_path["train/NORMAL/IM-0001-0001.png"] == by_path["test/NORMAL/IM-0001-0002.png"]
    with caplog.at_level("WARNING", logger="data_pipeline"), warnings.catch_warnings():
        warnings.simplefilter("error")  # information goes through logging, not warnings
        split = split_train_test(ds)
    assert "2 train/ image(s)" in caplog.text and "left out of training" in caplog.text
    assert split.dropped_from_train == 2 and len(split.train_idx) == 6
    assert not set(ds.groups[split.train_idx]) & set(ds.groups[split.test_idx])
    path = tmp_path / "split.json"
    save_split(split, ds, path)
    assert json.loads(path.read_text())["dropped_from_train"] == 2
    loaded = load_split(path, ds)
    assert np.array_equal(loaded.train_idx, split.train_idx) and loaded.dropped_from_train == 2
    # A record from before the rule keeps its train pool (resumed searches see the same folds).
    old = json.loads(path.read_text())
    del old["dropped_from_train"]
    path.write_text(json.dumps(old))
    assert len(load_split(path, ds).train_idx) == 8
