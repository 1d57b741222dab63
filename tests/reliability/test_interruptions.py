"""Reliability battery, interruptions: changed-configuration resumes, concurrent searches, and
SIGINT / SIGTERM / SIGKILL during a search followed by a resume.

Every case runs ``run_search.py`` in a subprocess as a user would. A refused resume or a refused
second search must exit 2 with a message naming the changed option (or the lock) and the way out,
without a traceback, and leave the run folder byte for byte as it was. An interrupted search must
stop with its documented exit code (130, 143; -9 for ``kill -9``), and the rerun of the same
command must finish the requested trials without training any finished fold again
(``<family>/fits.jsonl`` logs a start and an end event per fold fit). These cases pass today; they
are here so they stay fixed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from reliability_helpers import REPO, assert_user_error, run_cli, search_args
from run_helpers import assert_no_refit, fit_events

from search.store.lock import RunLock

# --- helpers ---------------------------------------------------------------------------------


def start_cli(args: list[str]) -> subprocess.Popen:
    """Starts ``python run_search.py ARGS`` in the background (the env ``run_cli`` uses)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("CXR_TEST_KILL_AT", None)
    return subprocess.Popen([sys.executable, str(REPO / "run_search.py"), *args], cwd=str(REPO),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished_folds(family_dir: Path) -> set[tuple[str, int]]:
    return {(e["trial_id"], e["fold"]) for e in fit_events(family_dir) if e["event"] == "end"}


def wait_for_finished_fold(proc: subprocess.Popen, family_dir: Path, timeout: float = 180) -> None:
    """Waits until the search has finished at least one fold (so a signal lands mid-search)."""
    deadline = time.monotonic() + timeout
    while not finished_folds(family_dir):
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the search ended (exit {proc.returncode}) before any fold "
                                 f"finished:\n{(err + out)[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("no fold finished in time")
        time.sleep(0.05)


def assert_search_complete(run_dir: Path, n_trials: int, n_folds: int = 2) -> None:
    """The run holds exactly ``n_trials`` completed trials (each id once) of ``n_folds`` folds,
    run.json says completed, and no finished fold was trained twice."""
    family = run_dir / "ann"
    ids = [f"{i:04d}" for i in range(n_trials)]
    cvs = {p.parent.name: json.loads(p.read_text()) for p in family.glob("trial_*/cv.json")}
    assert sorted(cvs) == [f"trial_{i}" for i in ids], sorted(cvs)
    assert all(c["status"] == "COMPLETED" and len(c["folds"]) == n_folds for c in cvs.values())
    assert sorted(json.loads((family / "oracle.json").read_text())["end_order"]) == ids
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    assert not (run_dir / ".lock").exists()
    assert_no_refit(family)
    assert finished_folds(family) == {(i, k) for i in ids for k in range(n_folds)}


def snapshot(run_dir: Path) -> dict[str, str]:
    """sha256 of every file in the run folder but the lock (what a refusal must not touch)."""
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file() and not p.name.startswith(".lock")}


def starts(family_dir: Path) -> Counter:
    return Counter((e["trial_id"], e["fold"]) for e in fit_events(family_dir)
                   if e["event"] == "start")


# --- changed-configuration resumes and a locked run folder -----------------------------------

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, synthetic_root) -> tuple[Path, list[str]]:
    """One finished tiny search (1 trial x 2 folds) and its command line; read-only."""
    folder = tmp_path_factory.mktemp("finished")
    args = search_args(folder, synthetic_root, "--max-trials", "1")
    result = run_cli(args)
    assert result.returncode == 0, (result.stderr + result.stdout)[-3000:]
    return folder / "run", args


def _replace(args: list[str], option: str, value: str) -> list[str]:
    out = list(args)
    out[out.index(option) + 1] = value
    return out


CHANGES = [
    pytest.param("--max-epochs", "3", "--max-epochs: saved 2, now 3", id="max-epochs"),
    pytest.param("--image-size", "24", "--image-size: saved 16, now 24", id="image-size"),
    pytest.param("--seed", "6", "--seed: saved 5, now 6", id="seed"),
]


@pytest.mark.parametrize("option, value, diff", CHANGES)
def test_changed_configuration_resume_is_refused(finished_run, option, value, diff):
    run_dir, args = finished_run
    before = snapshot(run_dir)
    result = run_cli(_replace(args, option, value))
    assert_user_error(result, str(run_dir), "different configuration", diff,
                      "rerun with the saved settings", "--overwrite", "new --run-dir")
    assert snapshot(run_dir) == before  # nothing finished was touched


def test_search_on_a_locked_run_folder_is_refused(finished_run):
    """The same command again while a live process holds the run folder's lock."""
    run_dir, args = finished_run
    before = snapshot(run_dir)
    with RunLock(run_dir) as lock:  # held by this (live) test process, as a search holds it
        result = run_cli(args)
        assert lock.path.exists()
    assert_user_error(result, f"run folder {run_dir} is in use by another search",
                      f"pid {os.getpid()}", "wait for it to finish", "another --run-dir",
                      str(run_dir / ".lock"))
    assert snapshot(run_dir) == before
    assert not (run_dir / ".lock").exists()


def _assert_interrupted(proc: subprocess.Popen, run_dir: Path, code: int) -> set:
    """The search stopped with ``code`` after saving, said how to resume, released the lock;
    returns the folds it had finished (at least one)."""
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, (err + out)[-3000:]
    assert "Traceback" not in err + out, (err + out)[-3000:]
    assert "finished folds are saved" in err and "Resume with:" in err
    assert "run_search.py search" in err and "--overwrite" not in err
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    assert not (run_dir / ".lock").exists()
    done_before = finished_folds(run_dir / "ann")
    assert done_before
    return done_before


def _assert_resume_finishes(args: list[str], run_dir: Path, done_before: set) -> None:
    """The same command again finishes the 2 trials; what had finished was not trained again."""
    result = run_cli(args)
    assert result.returncode == 0, (result.stderr + result.stdout)[-3000:]
    assert "Traceback" not in result.stderr + result.stdout
    assert "resuming:" in (run_dir / "search.log").read_text()
    assert_search_complete(run_dir, 2)
    assert all(starts(run_dir / "ann")[key] == 1 for key in done_before)


def _copy_run(finished_run, tmp_path: Path) -> tuple[Path, list[str]]:
    """A writable copy of the finished run and the command that resumes it."""
    run_dir, args = finished_run
    copy = Path(shutil.copytree(run_dir, tmp_path / "run_copy"))
    return copy, _replace(args, "--run-dir", str(copy))


def test_lock_left_by_another_host_is_refused_naming_the_file_to_delete(finished_run, tmp_path):
    """A lock record from another machine (its pid cannot be checked) is never taken over."""
    run_dir, args = _copy_run(finished_run, tmp_path)
    lock = run_dir / ".lock"
    lock.write_text(json.dumps({"pid": 4242, "host": "gpu-node-17", "role": "chief",
                                "started": "2026-12-01T10:00:00+00:00"}))
    before = snapshot(run_dir)
    result = run_cli(args)
    assert_user_error(result, f"run folder {run_dir} is in use by another search",
                      "pid 4242 on host gpu-node-17", f"delete {lock}")
    assert snapshot(run_dir) == before and lock.exists()


def test_rerun_of_a_finished_search_trains_nothing(finished_run, tmp_path):
    run_dir, args = _copy_run(finished_run, tmp_path)
    folds_before = {k: v for k, v in snapshot(run_dir).items() if "/fold" in k}
    events_before = fit_events(run_dir / "ann")
    result = run_cli(args)
    assert result.returncode == 0, (result.stderr + result.stdout)[-3000:]
    assert "Traceback" not in result.stderr + result.stdout
    assert "[ann] resuming: 1 trial(s) done, 0 left" in (run_dir / "search.log").read_text()
    assert fit_events(run_dir / "ann") == events_before  # no fold fit started
    assert {k: v for k, v in snapshot(run_dir).items() if "/fold" in k} == folds_before
    assert_search_complete(run_dir, 1)


def test_overwrite_after_a_refused_resume_starts_afresh(finished_run, tmp_path):
    """The way out the refusal names: --overwrite deletes the old search and runs the new one."""
    run_dir, args = _copy_run(finished_run, tmp_path)
    result = run_cli([*_replace(args, "--seed", "6"), "--overwrite"])
    assert result.returncode == 0, (result.stderr + result.stdout)[-3000:]
    assert "Traceback" not in result.stderr + result.stdout
    assert json.loads((run_dir / "run.json").read_text())["config"]["seed"] == 6
    assert_search_complete(run_dir, 1)
    assert all(e["pid"] != fit_events(finished_run[0] / "ann")[0]["pid"]
               for e in fit_events(run_dir / "ann"))  # every fold trained by the new search


@pytest.mark.slow
def test_second_search_is_refused_while_the_first_runs_then_ctrl_c_and_resume(tmp_path,
                                                                             synthetic_root):
    """Two real searches on one run folder: the second is refused naming the lock (the first is
    paused with SIGSTOP meanwhile, so it is surely still running); then Ctrl-C (SIGINT) stops the
    first with exit 130, and the rerun finishes."""
    args = search_args(tmp_path, synthetic_root)  # 2 trials x 2 folds x 2 epochs
    run_dir = tmp_path / "run"
    first = start_cli(args)
    try:
        wait_for_finished_fold(first, run_dir / "ann")
        first.send_signal(signal.SIGSTOP)
        second = run_cli(args)
        assert_user_error(second, f"run folder {run_dir} is in use by another search",
                          f"pid {first.pid}", "another --run-dir", str(run_dir / ".lock"))
    finally:
        first.send_signal(signal.SIGCONT)
    first.send_signal(signal.SIGINT)
    done_before = _assert_interrupted(first, run_dir, 130)
    _assert_resume_finishes(args, run_dir, done_before)


@pytest.mark.slow
def test_sigterm_stops_cleanly_and_the_resume_finishes(tmp_path, synthetic_root):
    args = search_args(tmp_path, synthetic_root)  # 2 trials x 2 folds x 2 epochs
    run_dir = tmp_path / "run"
    proc = start_cli(args)
    wait_for_finished_fold(proc, run_dir / "ann")
    proc.send_signal(signal.SIGTERM)
    done_before = _assert_interrupted(proc, run_dir, 143)
    _assert_resume_finishes(args, run_dir, done_before)


@pytest.mark.slow
def test_sigkill_mid_fold_then_the_resume_finishes(tmp_path, synthetic_root):
    """``kill -9`` in the second fold of the second trial (the test failpoint, so the moment is
    exact): only that fold is trained again."""
    args = search_args(tmp_path, synthetic_root)  # 2 trials x 2 folds x 2 epochs
    run_dir = tmp_path / "run"
    killed = run_cli(args, env_extra={"CXR_TEST_KILL_AT": "trial:1:fold:1:epoch:0"})
    assert killed.returncode == -signal.SIGKILL, (killed.stderr + killed.stdout)[-3000:]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
    assert (run_dir / ".lock").exists()  # left by the dead process
    done_before = finished_folds(run_dir / "ann")
    assert done_before == {("0000", 0), ("0000", 1), ("0001", 0)}

    _assert_resume_finishes(args, run_dir, done_before)
    assert "took over a stale lock" in (run_dir / "search.log").read_text()
    assert starts(run_dir / "ann")[("0001", 1)] == 2  # the fold in progress, and only it, again
