"""load_dataset on generated data: layouts, colour modes, formats, big images, bad files."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from dp_helpers import make_tree, write_image

from data_pipeline import DataError, data_fingerprint, generate_synthetic, load_dataset


def test_synthetic_kaggle_layout(synthetic_dataset):
    ds = synthetic_dataset
    n = len(ds.y)
    assert ds.class_names == ["NORMAL", "PNEUMONIA"] and ds.positive_class == "PNEUMONIA"
    assert ds.x.shape == (n, 32, 32, 1) and ds.x.dtype == np.uint8
    assert ds.y.dtype == np.int64 and set(ds.y) == {0, 1}
    assert ds.groups.shape == (n,) and ds.origin.shape == (n,) and len(ds.paths) == n
    assert all(p.startswith("train/") and "\\" not in p for p in ds.paths)
    assert set(ds.origin) == {"train"}
    assert all(g.startswith(("NORMAL/", "PNEUMONIA/")) for g in ds.groups)
    # ~1:3 NORMAL:PNEUMONIA and several images per patient
    assert 0.15 < np.mean(ds.y == 0) < 0.45
    assert len(np.unique(ds.groups)) < n
    assert len(ds.duplicate_sets) == 1 and ds.skipped == []
    assert ds.x.std() > 10  # real content, not blank
    assert ds.fingerprint == data_fingerprint(ds.root, image_size=32, color_mode="grayscale")
    assert ds.fingerprint != data_fingerprint(ds.root)


def test_flat_layout_rgb_png(tmp_path, cache_dir):
    root = generate_synthetic(tmp_path / "flat", seed=1, n_normal_patients=3, n_pneumonia_patients=4,
                              images_per_patient=(1, 2), image_size=24, fmt="png", rgb=True,
                              layout="flat", duplicates=0)
    assert (root / "NORMAL").is_dir() and not (root / "train").exists()
    ds = load_dataset(root, image_size=16, color_mode="rgb", cache_dir=cache_dir, progress=False)
    assert ds.x.shape[1:] == (16, 16, 3)
    assert all(p.startswith(("NORMAL/", "PNEUMONIA/")) and p.endswith(".png") for p in ds.paths)
    gray = load_dataset(root, image_size=16, cache_dir=cache_dir, progress=False)
    assert gray.x.shape[1:] == (16, 16, 1)
    # grey content saved as RGB: the three channels agree with the grayscale decode
    assert np.abs(ds.x[..., 0].astype(int) - gray.x[..., 0]).max() <= 2


def test_test_and_val_folders(tmp_path, cache_dir):
    root = generate_synthetic(tmp_path / "k", seed=2, n_normal_patients=4, n_pneumonia_patients=6,
                              images_per_patient=(1, 2), image_size=24, splits=("train", "test", "val"))
    ds = load_dataset(root, image_size=16, cache_dir=cache_dir, progress=False)
    assert set(ds.origin) == {"train", "test", "val"}
    for o in ("train", "test", "val"):
        assert all(p.startswith(o + "/") for p, org in zip(ds.paths, ds.origin) if org == o)


def test_positive_class_option_and_three_classes(tmp_path, cache_dir):
    root = make_tree(tmp_path / "d", {"train/CAT": 2, "train/DOG": 2})
    ds = load_dataset(root, image_size=16, cache_dir=cache_dir, progress=False)
    assert ds.class_names == ["CAT", "DOG"] and ds.positive_class == "DOG"
    ds = load_dataset(root, image_size=16, positive_class="CAT", cache_dir=cache_dir, progress=False)
    assert ds.class_names == ["DOG", "CAT"] and ds.class_names[ds.y[0]] == ds.paths[0].split("/")[1]
    make_tree(root, {"train/EMU": 2})
    ds = load_dataset(root, image_size=16, cache_dir=cache_dir, progress=False)
    assert ds.class_names == ["CAT", "DOG", "EMU"] and ds.positive_class is None
    with pytest.raises(DataError, match="positive class 'FOX'"):
        load_dataset(root, positive_class="FOX", cache_dir=cache_dir)


def test_big_jpeg_decodes_with_draft(tmp_path, cache_dir):
    root = make_tree(tmp_path / "big", {"train/NORMAL": 1, "train/PNEUMONIA": 1})
    big = write_image(root / "train/NORMAL/IM-0099-0001.jpeg", size=2400, value=200)
    write_image(root / "train/PNEUMONIA/person99_virus_1.jpeg", size=1800, mode="RGB", seed=3)
    ds = load_dataset(root, image_size=64, cache_dir=cache_dir, progress=False)
    i = ds.paths.index("train/NORMAL/" + big.name)
    assert ds.x.shape[1:] == (64, 64, 1) and abs(int(ds.x[i].mean()) - 200) <= 2


def test_non_images_ignored_unreadable_skipped_or_strict(tmp_path, cache_dir, caplog):
    root = make_tree(tmp_path / "d", {"train/NORMAL": 3, "train/PNEUMONIA": 3})
    (root / "train/NORMAL/notes.txt").write_text("not an image")
    (root / "train/NORMAL/.DS_Store").write_bytes(b"\0\1")
    (root / "train/README.md").write_text("stray file next to the class folders")
    (root / "train/PNEUMONIA/person9_virus_9.jpeg").write_bytes(b"garbage, not a jpeg")
    good = root / "train/PNEUMONIA/person1_bacteria_1.png"
    trunc = root / "train/PNEUMONIA/person8_virus_8.jpeg"
    write_image(trunc, size=64)
    trunc.write_bytes(trunc.read_bytes()[:200])
    with caplog.at_level("WARNING", logger="data_pipeline"), warnings.catch_warnings():
        warnings.simplefilter("error")  # information goes through logging, not warnings
        ds = load_dataset(root, image_size=16, cache_dir=cache_dir, progress=False)
    assert "skipped 2 unreadable" in caplog.text
    assert len(ds.y) == 6 and "train/PNEUMONIA/" + good.name in ds.paths
    assert sorted(p for p, _ in ds.skipped) == ["train/PNEUMONIA/person8_virus_8.jpeg",
                                                "train/PNEUMONIA/person9_virus_9.jpeg"]
    with pytest.raises(DataError, match="person9_virus_9.jpeg.*--strict"):
        load_dataset(root, image_size=16, cache_dir=cache_dir, strict=True, progress=False)


def test_parallel_decode_matches_serial(tmp_path, cache_dir):
    root = generate_synthetic(tmp_path / "p", seed=4, n_normal_patients=40, n_pneumonia_patients=60,
                              images_per_patient=(3, 3), image_size=24)
    serial = load_dataset(root, image_size=16, cache_dir=cache_dir / "a", workers=1, progress=False)
    assert len(serial.y) >= 256  # large enough to use the process pool
    parallel = load_dataset(root, image_size=16, cache_dir=cache_dir / "b", workers=2, progress=False)
    assert np.array_equal(serial.x, parallel.x) and serial.paths == parallel.paths


def test_synthetic_is_deterministic(tmp_path):
    kw = dict(seed=5, n_normal_patients=2, n_pneumonia_patients=3, images_per_patient=(1, 2), image_size=24)
    a, b = generate_synthetic(tmp_path / "a", **kw), generate_synthetic(tmp_path / "b", **kw)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*.jpeg"))
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*.jpeg"))
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files_a)
    shutil.rmtree(b)
    c = generate_synthetic(tmp_path / "c", **{**kw, "seed": 6})
    content = lambda r: sorted(p.read_bytes() for p in r.rglob("*.jpeg"))  # noqa: E731
    assert content(a) != content(c)


def test_default_data_dir_generates_once(monkeypatch, tmp_path):
    from data_pipeline import default_data_dir

    monkeypatch.setenv("CXR_CACHE_DIR", str(tmp_path))
    path = default_data_dir()
    assert path == tmp_path / "synthetic" / "chest_xray_synthetic"
    files = sorted(path.rglob("*.jpeg"))
    assert 250 <= len(files) <= 350
    mtime = files[0].stat().st_mtime_ns
    assert default_data_dir() == path and files[0].stat().st_mtime_ns == mtime
