"""Reliability battery: faults in the data folder and the decode cache (issue 13).

Each case runs ``run_search.py`` as a user would (see ``reliability_helpers``) and checks that a
bad data folder is refused cleanly, before any training, naming the path and the fix; or, for a
damaged cache entry, that the command recovers with a warning.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fault_helpers import needs_permissions, nothing_trained
from reliability_helpers import assert_user_error, run_cli, search_args


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# -- item 1: three classes ----------------------------------------------------------------------
def test_three_classes_refused_before_training(tmp_path: Path, synthetic_root: Path) -> None:
    data = _copy(synthetic_root, tmp_path / "three")
    shutil.copytree(data / "train" / "NORMAL", data / "train" / "COVID")
    run_dir = tmp_path / "run"
    out = assert_user_error(run_cli(search_args(tmp_path, data, run_dir=run_dir)),
                            "COVID", "NORMAL", "PNEUMONIA", str(data), "two class folders")
    assert "--data" in out
    nothing_trained(run_dir)
    assert not (run_dir / "run.json").exists()


def test_three_classes_refused_by_run_before_training(tmp_path: Path,
                                                      synthetic_root: Path) -> None:
    data = _copy(synthetic_root, tmp_path / "three")
    shutil.copytree(data / "train" / "NORMAL", data / "train" / "COVID")
    run_dir = tmp_path / "run"
    args = ["run", *search_args(tmp_path, data, run_dir=run_dir)[1:]]
    assert_user_error(run_cli(args), "COVID", str(data), "two class folders")
    nothing_trained(run_dir)


# -- item 5: the Kaggle zip's chest_xray/chest_xray ---------------------------------------------
@pytest.mark.parametrize("command", ["data", "search"])
def test_kaggle_zip_one_level_too_high(tmp_path: Path, synthetic_root: Path,
                                       command: str) -> None:
    outer = tmp_path / "chest_xray"
    inner = _copy(synthetic_root, outer / "chest_xray")
    (outer / "__MACOSX" / "chest_xray").mkdir(parents=True)  # as the zip unpacks
    args = (["data", "--data", str(outer), "--image-size", "16"] if command == "data"
            else search_args(tmp_path, outer))
    out = assert_user_error(run_cli(args), "one level too high", f"--data {inner}")
    assert "no images" not in out


# -- item 6: permissions ------------------------------------------------------------------------
@needs_permissions
def test_unreadable_class_folder(tmp_path: Path, synthetic_root: Path) -> None:
    data = _copy(synthetic_root, tmp_path / "data")
    locked = data / "train" / "NORMAL"
    locked.chmod(0)
    try:
        assert_user_error(run_cli(search_args(tmp_path, data)), str(locked), "permission",
                          "chmod")
    finally:
        locked.chmod(0o755)


@needs_permissions
def test_unreadable_data_root(tmp_path: Path, synthetic_root: Path) -> None:
    data = _copy(synthetic_root, tmp_path / "data")
    data.chmod(0)
    try:
        assert_user_error(run_cli(["data", "--data", str(data), "--image-size", "16"]),
                          str(data), "permission", "chmod")
    finally:
        data.chmod(0o755)


def test_permission_error_names_the_folder(tmp_path: Path, synthetic_root: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The same rule without a subprocess, so it also runs as root: listing a folder fails."""
    from data_pipeline import discovery
    from data_pipeline.errors import DataError

    locked = str(synthetic_root / "train" / "NORMAL")
    real_scandir = os.scandir

    def scandir(path):
        if str(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_scandir(path)

    monkeypatch.setattr(discovery.os, "scandir", scandir)
    with pytest.raises(DataError) as err:
        discovery.discover(synthetic_root)
    assert locked in str(err.value) and "chmod" in str(err.value)


# -- item 8: a damaged decode-cache entry -------------------------------------------------------
def test_truncated_cache_entry_is_rebuilt(tmp_path: Path, synthetic_root: Path) -> None:
    cache = tmp_path / "cache"
    env = {"CXR_CACHE_DIR": str(cache)}
    args = ["data", "--data", str(synthetic_root), "--image-size", "16"]
    first = run_cli(args, env_extra=env)
    assert first.returncode == 0, first.stderr[-2000:]
    (entry,) = (cache / "decoded").glob("decoded-*.npz")
    size = entry.stat().st_size
    with open(entry, "r+b") as fh:
        fh.truncate(size // 2)
    second = run_cli(args, env_extra=env)
    out = second.stderr + second.stdout
    assert second.returncode == 0, out[-3000:]
    assert "Traceback" not in out
    assert "damaged" in out and "rebuilding" in out, out[-3000:]
    assert entry.stat().st_size == size  # rebuilt in place
    third = run_cli(args, env_extra=env)
    assert third.returncode == 0 and "damaged" not in third.stderr
