"""Reliability battery, output faults: bad ``--out`` paths, the run's leaderboard, a missing or
read-only run folder, and what reaches stderr besides the command's own lines.

Every case runs ``run_search.py`` in a subprocess on one tiny finished run (searched and
exported once per module) and checks the exit code, the message, that no traceback reaches the
user and that nothing finished was lost.
"""

from __future__ import annotations

import csv
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from reliability_helpers import assert_user_error, run_cli, search_args  # noqa: E402

needs_non_root = pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                                    reason="root bypasses file permissions")
# What TensorFlow's C++ libraries print at start-up (TensorFlow 2.21 on a machine without a GPU).
STARTUP_NOISE = ("absl::InitializeLog", "I0000 ", "W0000 ", "E0000 ", "cuInit", "cudart_stub",
                 "oneDNN custom operations")


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny search, its ANN winner exported: ``{"tmp", "data", "run", "export", "image"}``."""
    from data_pipeline.synthetic import generate_synthetic

    tmp = tmp_path_factory.mktemp("output_faults")
    data = generate_synthetic(tmp / "data", seed=7, n_normal_patients=10,
                              n_pneumonia_patients=20, images_per_patient=(1, 4), image_size=32)
    result = run_cli(search_args(tmp, data))
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp / "run"
    result = run_cli(["export", "--run-dir", str(run), "--model", "ann", "--no-single"])
    assert result.returncode == 0, result.stderr[-3000:]
    image = next(p for p in sorted(Path(data).rglob("*.jpeg")))
    return {"tmp": tmp, "data": Path(data), "run": run,
            "export": run / "exports" / "ann" / "rank1", "image": image}


def _copy_run(finished: dict[str, Path], dest: Path) -> Path:
    """A private copy of the finished run, for a case that changes it."""
    shutil.copytree(finished["run"], dest, symlinks=True)
    return dest


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# --- a. output paths are checked before the work ----------------------------------------------
def test_predict_out_that_is_a_folder_is_refused_before_predicting(finished, tmp_path) -> None:
    folder = tmp_path / "preds"
    folder.mkdir()
    result = run_cli(["predict", "--model", str(finished["export"]), str(finished["image"]),
                      "--out", str(folder)])
    assert_user_error(result, str(folder), "is a folder", "file name")
    assert list(folder.iterdir()) == []


def test_predict_out_under_a_file_is_refused(finished, tmp_path) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("keep me\n")
    out = blocker / "preds.csv"
    result = run_cli(["predict", "--model", str(finished["export"]), str(finished["image"]),
                      "--out", str(out)])
    assert_user_error(result, str(out), f"{blocker} is a file")
    assert blocker.read_text() == "keep me\n"


def test_leaderboard_out_that_is_a_folder_is_refused(finished, tmp_path) -> None:
    run = _copy_run(finished, tmp_path / "run")
    assert run_cli(["leaderboard", "--run-dir", str(run), "--no-plots"]).returncode == 0
    before = (run / "leaderboard.csv").read_text()
    result = run_cli(["leaderboard", "--run-dir", str(run), "--no-plots", "--out", str(tmp_path)])
    assert_user_error(result, str(tmp_path), "is a folder", "file name")
    assert (run / "leaderboard.csv").read_text() == before


@pytest.mark.parametrize("command", ["analyze", "compare"])
def test_folder_outputs_that_are_files_are_refused(finished, tmp_path, command: str) -> None:
    out = tmp_path / "report.md"
    out.write_text("an earlier report\n")
    result = run_cli([command, "--run-dir", str(finished["run"]), "--out", str(out)])
    assert_user_error(result, str(out), "is a file", "folder")
    assert out.read_text() == "an earlier report\n"


@needs_non_root
def test_predict_out_in_a_read_only_folder_is_refused(finished, tmp_path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = run_cli(["predict", "--model", str(finished["export"]),
                          str(finished["image"]), "--out", str(locked / "sub" / "preds.csv")])
        assert_user_error(result, str(locked), "permission", "chmod")
    finally:
        locked.chmod(0o755)


# --- b. --top-k never truncates the run's leaderboard -------------------------------------------
def test_top_k_keeps_the_runs_full_leaderboard(finished, tmp_path) -> None:
    run = _copy_run(finished, tmp_path / "run")
    result = run_cli(["leaderboard", "--run-dir", str(run), "--no-plots", "--top-k", "1"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(_csv_rows(run / "leaderboard.csv")) == 2  # both trials, not the top 1
    top = tmp_path / "top1.csv"
    result = run_cli(["leaderboard", "--run-dir", str(run), "--no-plots", "--top-k", "1",
                      "--out", str(top)])
    assert result.returncode == 0, result.stderr[-3000:]
    assert [r["rank"] for r in _csv_rows(top)] == ["1"]
    assert len(_csv_rows(run / "leaderboard.csv")) == 2


# --- c. a missing run folder names the runs that exist ------------------------------------------
@pytest.mark.parametrize("command", ["leaderboard", "analyze"])
def test_default_run_dir_names_the_runs_that_exist(finished, tmp_path, command: str) -> None:
    _copy_run(finished, tmp_path / "runs" / "quickstart")
    result = run_cli([command], cwd=tmp_path)
    assert_user_error(result, "runs/default", "runs/quickstart", "--run-dir")


# --- d. a read-only run folder still gets its table ---------------------------------------------
@needs_non_root
def test_read_only_run_folder_prints_the_table(finished, tmp_path) -> None:
    run = _copy_run(finished, tmp_path / "run")
    run.chmod(0o555)
    try:
        result = run_cli(["leaderboard", "--run-dir", str(run)])
    finally:
        run.chmod(0o755)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "Traceback" not in out and "COMPLETED" in out
    assert "could not write the full leaderboard" in out and "--out FILE" in out


# --- e. no TensorFlow start-up lines --------------------------------------------------------------
def test_cli_stderr_has_no_tensorflow_startup_lines(finished) -> None:
    # A user's shell does not set TF_CPP_MIN_LOG_LEVEL (the test session does).
    result = run_cli(["predict", "--model", str(finished["export"]), str(finished["image"])],
                     env_extra={"TF_CPP_MIN_LOG_LEVEL": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1 predicted" in result.stdout
    noise = [line for line in result.stderr.splitlines()
             if any(word in line for word in STARTUP_NOISE)]
    assert noise == [], "\n".join(noise)
