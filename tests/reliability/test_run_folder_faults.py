"""Reliability battery: faults in the run folder (issue 13).

Each case runs ``run_search.py`` as a user would (see ``reliability_helpers``): a refused
resume must name what differs, a damaged or unwritable run folder must be refused or recovered
with a clear message, and nothing finished may be lost.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fault_helpers import needs_permissions, nothing_trained
from reliability_helpers import TINY_SPACE, assert_user_error, run_cli, search_args


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
    from search import lock as lock_module
    from search.errors import SearchError

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
