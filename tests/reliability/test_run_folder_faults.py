"""Reliability battery: faults in the run folder (issue 13).

Each case runs ``run_search.py`` as a user would (see ``reliability_helpers``): a refused
resume must name what differs, a damaged or unwritable run folder must be refused or recovered
with a clear message, and nothing finished may be lost.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from fault_helpers import needs_permissions, nothing_trained
from reliability_helpers import assert_user_error, run_cli, search_args
from run_helpers import TINY_SPACE


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, synthetic_root: Path) -> Path:
    """One finished tiny search (2 ANN trials x 2 folds); copy it before changing it."""
    folder = tmp_path_factory.mktemp("finished")
    result = run_cli(search_args(folder, synthetic_root))
    assert result.returncode == 0, (result.stderr + result.stdout)[-3000:]
    return folder / "run"


def _copy_run(finished_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def _finished_records(run_dir: Path) -> dict[str, str]:
    """cv.json and fold<k>.json contents by relative path: what must never be lost."""
    return {str(p.relative_to(run_dir)): p.read_text()
            for pattern in ("*/trial_*/cv.json", "*/trial_*/fold*.json")
            for p in sorted(run_dir.glob(pattern))}


def _fits(run_dir: Path) -> list[dict]:
    path = run_dir / "ann" / "fits.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# -- item 9: a refused resume after a --space change names the dimensions ------------------------
def test_space_change_names_dimensions(tmp_path: Path, finished_run: Path,
                                       synthetic_root: Path) -> None:
    run_dir = _copy_run(finished_run, tmp_path)
    before = _finished_records(run_dir)
    args = search_args(tmp_path, synthetic_root, run_dir=run_dir)
    changed = tmp_path / "changed.toml"
    changed.write_text(TINY_SPACE.replace("dense_units = {min = 16, max = 64}",
                                          "dense_units = {min = 16, max = 32}"))
    args[args.index("--space") + 1] = str(changed)
    out = assert_user_error(run_cli(args), "ann.dense_units", "max=64", "max=32",
                            "--overwrite")
    assert "(differs)" not in out
    assert _finished_records(run_dir) == before


# -- item 6: a read-only run folder --------------------------------------------------------------
@needs_permissions
def test_read_only_run_folder(tmp_path: Path, finished_run: Path, synthetic_root: Path) -> None:
    run_dir = _copy_run(finished_run, tmp_path)
    run_dir.chmod(0o555)
    try:
        assert_user_error(run_cli(search_args(tmp_path, synthetic_root, run_dir=run_dir)),
                          str(run_dir / ".lock"), "writable", "--run-dir")
    finally:
        run_dir.chmod(0o755)


def test_lock_permission_error_is_a_search_error(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The same rule without a subprocess, so it also runs as root."""
    from search.errors import SearchError
    from search.store import lock as lock_module

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(lock_module.os, "open", refuse)
    with pytest.raises(SearchError) as err:
        lock_module.RunLock(tmp_path / "run").acquire()
    assert str(tmp_path / "run" / ".lock") in str(err.value)
    assert "writable" in str(err.value)


def test_new_search_in_read_only_parent_trains_nothing(tmp_path: Path,
                                                       synthetic_root: Path) -> None:
    """A run folder whose parent is a file is refused before any data is loaded."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    run_dir = blocker / "run"
    assert_user_error(run_cli(search_args(tmp_path, synthetic_root, run_dir=run_dir)),
                      str(blocker))
    nothing_trained(tmp_path)


# -- item 2: data that moved or was copied --------------------------------------------------------
def _cp_r(src: Path, dst: Path) -> Path:
    """A byte-identical copy with new timestamps, as ``cp -r`` makes it."""
    subprocess.run(["cp", "-r", str(src), str(dst)], check=True)
    return dst


def test_resume_on_byte_identical_copy(tmp_path: Path, finished_run: Path,
                                       synthetic_root: Path) -> None:
    run_dir = _copy_run(finished_run, tmp_path)
    before, fits = _finished_records(run_dir), _fits(run_dir)
    copy = _cp_r(synthetic_root, tmp_path / "moved")
    result = run_cli(search_args(tmp_path, copy, run_dir=run_dir))
    out = result.stderr + result.stdout
    assert result.returncode == 0, out[-3000:]
    assert _finished_records(run_dir) == before and _fits(run_dir) == fits
    assert json.loads((run_dir / "run.json").read_text())["config"]["data"] == str(copy)


def test_resume_on_changed_data_names_the_file(tmp_path: Path, finished_run: Path,
                                               synthetic_root: Path) -> None:
    run_dir = _copy_run(finished_run, tmp_path)
    before = _finished_records(run_dir)
    copy = _cp_r(synthetic_root, tmp_path / "changed")
    first, second = sorted((copy / "train" / "NORMAL").glob("*.jpeg"))[:2]
    first.write_bytes(second.read_bytes())
    out = assert_user_error(run_cli(search_args(tmp_path, copy, run_dir=run_dir)),
                            f"train/NORMAL/{first.name} (changed)", "--data", "--overwrite")
    assert "differ from those the run used (" not in out  # the old, nameless wording
    assert _finished_records(run_dir) == before


@pytest.mark.slow
def test_export_and_compare_on_moved_data(tmp_path: Path, finished_run: Path,
                                          synthetic_root: Path) -> None:
    run_dir = _copy_run(finished_run, tmp_path)
    gone = tmp_path / "old-place" / "chest_xray"
    run_json = run_dir / "run.json"
    run = json.loads(run_json.read_text())
    run["config"]["data"] = str(gone)  # the data moved away after the search
    run_json.write_text(json.dumps(run))
    assert_user_error(run_cli(["export", "--run-dir", str(run_dir), "--model", "ann"]),
                      str(gone), "--data NEW_PATH")
    moved = _cp_r(synthetic_root, tmp_path / "new-place")
    result = run_cli(["export", "--run-dir", str(run_dir), "--model", "ann", "--no-single",
                      "--data", str(moved)])
    out = result.stderr + result.stdout
    assert result.returncode == 0, out[-3000:]
    assert "changed since the search" not in out
    assert (run_dir / "exports" / "ann" / "rank1" / "model.keras").is_file()
    result = run_cli(["compare", "--run-dir", str(run_dir), "--n-boot", "20", "--data",
                      str(moved)])
    assert result.returncode == 0, (result.stderr + result.stdout)[-3000:]


# -- item 4: damaged KerasTuner files --------------------------------------------------------------
def _with_max_trials(args: list[str], n: int) -> list[str]:
    args = list(args)
    args[args.index("--max-trials") + 1] = str(n)
    return args


def _all_kt_json_valid(run_dir: Path) -> None:
    for path in [*run_dir.glob("ann/trial_*/trial.json"), run_dir / "ann" / "oracle.json",
                 run_dir / "ann" / "tuner0.json"]:
        json.loads(path.read_text())  # raises on a damaged file


@pytest.mark.parametrize("name", ["trial_0000/trial.json", "oracle.json", "tuner0.json"])
def test_damaged_keras_tuner_file_is_repaired(tmp_path: Path, finished_run: Path,
                                              synthetic_root: Path, name: str) -> None:
    run_dir = _copy_run(finished_run, tmp_path)
    before, fits = _finished_records(run_dir), _fits(run_dir)
    damaged = run_dir / "ann" / name
    text = damaged.read_text()
    damaged.write_text(text[:len(text) // 2])  # truncated, as an in-place write leaves it
    with pytest.raises(ValueError):
        json.loads(damaged.read_text())
    args = _with_max_trials(search_args(tmp_path, synthetic_root, run_dir=run_dir), 3)
    result = run_cli(args)
    out = result.stderr + result.stdout
    assert result.returncode == 0 and "Traceback" not in out, out[-3000:]
    assert str(damaged) in out  # the warning names the repaired file
    _all_kt_json_valid(run_dir)
    after = _finished_records(run_dir)
    assert {k: after[k] for k in before} == before  # nothing finished was touched
    assert _fits(run_dir)[:len(fits)] == fits
    assert not [e for e in _fits(run_dir)[len(fits):] if e["trial_id"] in ("0000", "0001")]
    assert len(list(run_dir.glob("ann/trial_*/cv.json"))) == 3  # and the search went on


def test_damaged_oracle_without_copy_names_the_file(tmp_path: Path, finished_run: Path,
                                                    synthetic_root: Path) -> None:
    run_dir = _copy_run(finished_run, tmp_path)
    before = _finished_records(run_dir)
    oracle = run_dir / "ann" / "oracle.json"
    oracle.write_text(oracle.read_text()[:100])
    (run_dir / "ann" / "oracle.json.bak").unlink()
    assert_user_error(run_cli(search_args(tmp_path, synthetic_root, run_dir=run_dir)),
                      str(oracle), "restore", "--run-dir")
    assert _finished_records(run_dir) == before


# -- item 3: a full disk ---------------------------------------------------------------------------
def test_disk_full_json_write_leaves_nothing_behind(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from search.store import files as rf

    path = tmp_path / "run.json"
    rf.write_json_atomic(path, {"status": "running"})

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(rf.os, "fsync", full)
    with pytest.raises(rf.DiskFullError) as err:
        rf.write_json_atomic(path, {"status": "completed"})
    assert str(path.parent) in str(err.value) and "resume" in str(err.value)
    assert json.loads(path.read_text()) == {"status": "running"}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_keras_tuner_saves_are_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """KerasTuner's save_json goes through the seam: a full disk keeps the old file whole and
    stops the search (FatalError) instead of failing the trial."""
    import errno

    import keras_tuner as kt
    from keras_tuner.src import utils

    from search.store import kt_files
    from search.store import files as rf

    kt_files.install_atomic_saves()
    path = tmp_path / "oracle.json"
    utils.save_json(str(path), {"end_order": ["0000"]})
    assert json.loads((tmp_path / "oracle.json.bak").read_text()) == {"end_order": ["0000"]}

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(rf.os, "fsync", full)
    with pytest.raises(kt.errors.FatalError) as err:
        utils.save_json(str(path), {"end_order": ["0000", "0001"]})
    assert isinstance(err.value, rf.DiskFullError)
    assert json.loads(path.read_text()) == {"end_order": ["0000"]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["oracle.json", "oracle.json.bak"]


def _can_mount_tmpfs(where: Path) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(where)],
                        capture_output=True).returncode == 0
    return ok


@pytest.mark.slow
def test_full_disk_stops_cleanly_and_resumes(tmp_path: Path, synthetic_root: Path) -> None:
    disk = tmp_path / "disk"
    if not _can_mount_tmpfs(disk):
        pytest.skip("cannot mount a small tmpfs here (needs root with CAP_SYS_ADMIN)")
    try:
        run_dir = disk / "run"
        args = search_args(tmp_path, synthetic_root, run_dir=run_dir)
        first = run_cli(_with_max_trials(args, 1))
        assert first.returncode == 0, (first.stderr + first.stdout)[-3000:]
        before, fits = _finished_records(run_dir), _fits(run_dir)
        filler = disk / "filler"
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        filler.write_bytes(b"\0" * (free - 400_000))
        assert_user_error(run_cli(_with_max_trials(args, 3)), "no space left", "free space",
                          "resume")
        _all_kt_json_valid(run_dir)
        assert not [p for p in run_dir.rglob("*") if ".tmp" in p.name]
        assert _finished_records(run_dir) == {**_finished_records(run_dir), **before}
        filler.unlink()
        last = run_cli(_with_max_trials(args, 3))
        assert last.returncode == 0, (last.stderr + last.stdout)[-3000:]
        _all_kt_json_valid(run_dir)
        assert _fits(run_dir)[:len(fits)] == fits
        assert not [e for e in _fits(run_dir)[len(fits):] if e["trial_id"] == "0000"]
        assert len(list(run_dir.glob("ann/trial_*/cv.json"))) == 3
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
