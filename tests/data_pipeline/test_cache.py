"""Decode cache: hits, and invalidation on any change of files or settings."""

from __future__ import annotations

import os

import numpy as np
from dp_helpers import make_tree, write_image

from data_pipeline import load_dataset
from data_pipeline import dataset as dataset_module


def count_decodes(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = dataset_module.decode_files

    def spy(paths, *a, **kw):
        calls.append(len(paths))
        return real(paths, *a, **kw)

    monkeypatch.setattr(dataset_module, "decode_files", spy)
    return calls


def test_cache_hit_and_invalidation(tmp_path, cache_dir, monkeypatch):
    root = make_tree(tmp_path / "d", {"train/NORMAL": 3, "train/PNEUMONIA": 3})
    calls = count_decodes(monkeypatch)
    load = lambda **kw: load_dataset(root, cache_dir=cache_dir, progress=False, **{"image_size": 16, **kw})  # noqa: E731
    first = load()
    assert calls == [6] and len(list(cache_dir.glob("*.npz"))) == 1
    second = load()
    assert calls == [6]  # hit
    assert np.array_equal(first.x, second.x) and first.fingerprint == second.fingerprint
    assert second.paths == first.paths and list(second.groups) == list(first.groups)

    load(image_size=20)
    assert calls[-1] == 6 and len(calls) == 2  # other size: miss
    load(color_mode="rgb")
    assert len(calls) == 3  # other colour mode: miss

    f = root / "train/NORMAL/IM-0001-0001.png"
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # touch
    touched = load()
    assert len(calls) == 4 and touched.fingerprint != first.fingerprint

    write_image(f, size=24, value=255)  # modify content
    modified = load()
    assert len(calls) == 5 and modified.x[modified.paths.index("train/NORMAL/IM-0001-0001.png")].min() == 255

    write_image(root / "train/NORMAL/IM-0009-0001.png", size=24)  # add a file
    assert len(load().y) == 7 and len(calls) == 6
    (root / "train/NORMAL/IM-0009-0001.png").unlink()  # remove it again (same list as before)
    load()
    assert len(calls) == 6  # back to a cached state


def test_corrupt_cache_entry_is_ignored(tmp_path, cache_dir):
    root = make_tree(tmp_path / "d", {"train/NORMAL": 2, "train/PNEUMONIA": 2})
    first = load_dataset(root, image_size=16, cache_dir=cache_dir, progress=False)
    [entry] = cache_dir.glob("*.npz")
    entry.write_bytes(b"not an npz")
    again = load_dataset(root, image_size=16, cache_dir=cache_dir, progress=False)
    assert np.array_equal(first.x, again.x)


def test_default_cache_location_follows_env(tmp_path, monkeypatch):
    from data_pipeline.cache import decoded_cache_dir

    monkeypatch.setenv("CXR_CACHE_DIR", str(tmp_path / "c"))
    assert decoded_cache_dir() == tmp_path / "c" / "decoded"
    root = make_tree(tmp_path / "d", {"train/NORMAL": 2, "train/PNEUMONIA": 2})
    load_dataset(root, image_size=16, progress=False)
    assert len(list((tmp_path / "c" / "decoded").glob("*.npz"))) == 1
    monkeypatch.delenv("CXR_CACHE_DIR")
    assert decoded_cache_dir().parts[-2:] == (".cache", "decoded")
