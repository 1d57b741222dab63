"""The run-folder lock: one live search per folder, stale locks taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from search.errors import SearchError
from search.store.lock import RunLock, is_held, lock_path, read_lock


def write_lock(run_dir, pid, host=None):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / ".lock").write_text(json.dumps(
        {"pid": pid, "host": host or socket.gethostname(), "started": "x", "role": "chief"}))


def test_acquire_release(tmp_path):
    with RunLock(tmp_path / "run") as lock:
        held = read_lock(lock.path)
        assert held["pid"] == os.getpid() and held["role"] == "chief"
        assert set(held) == {"pid", "host", "started", "role"}
    assert not (tmp_path / "run" / ".lock").exists()


def test_stale_lock_from_dead_pid_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_lock(tmp_path / "run", dead.pid)
    lock = RunLock(tmp_path / "run").acquire()
    assert lock.took_over["pid"] == dead.pid
    assert read_lock(lock.path)["pid"] == os.getpid()
    lock.release()


REPO = str(Path(__file__).resolve().parents[2])
HOLD = ("import sys, time; from search.store.lock import RunLock; RunLock(sys.argv[1]).acquire(); "
        "print('held', flush=True); time.sleep(60)")


def _holder(run_dir):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": REPO})
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_live_lock_is_refused_and_freed_by_kill_9(tmp_path):
    live = _holder(tmp_path / "run")
    try:
        assert is_held(tmp_path / "run" / ".lock")
        with pytest.raises(SearchError, match=f"pid {live.pid}"):
            RunLock(tmp_path / "run").acquire()
        assert read_lock(tmp_path / "run" / ".lock")["pid"] == live.pid  # left alone
        live.kill()  # SIGKILL: no chance to clean up, the record stays behind
        live.wait()
        assert not is_held(tmp_path / "run" / ".lock")
        lock = RunLock(tmp_path / "run").acquire()
        assert lock.took_over["pid"] == live.pid
        lock.release()
    finally:
        live.kill()
        live.wait()


def test_racing_searches_never_both_win(tmp_path):
    # Both processes start together; the OS lock lets exactly one of them hold the folder.
    code = ("import sys, time; from search.store.lock import RunLock\n"
            "try:\n    RunLock(sys.argv[1]).acquire(); print('won', flush=True); time.sleep(3)\n"
            "except Exception:\n    print('lost', flush=True)\n")
    env = {**os.environ, "PYTHONPATH": REPO}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "run")],
                              stdout=subprocess.PIPE, text=True, env=env) for _ in range(4)]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(outs) == ["lost", "lost", "lost", "won"]


def test_other_host_is_refused(tmp_path):
    write_lock(tmp_path / "run", 1, host="some-other-machine")
    with pytest.raises(SearchError, match="some-other-machine"):
        RunLock(tmp_path / "run").acquire()


def test_worker_role_uses_its_own_file(tmp_path):
    assert lock_path(tmp_path, "worker", "tuner1").name == ".lock.tuner1"
    with RunLock(tmp_path, role="chief"), RunLock(tmp_path, role="worker", tuner_id="tuner1") as w:
        assert read_lock(w.path)["role"] == "worker"
