"""The run-folder lock: one live search per folder, stale locks taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from search.errors import SearchError
from search.lock import RunLock, lock_path, read_lock


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


def test_live_lock_is_refused(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        write_lock(tmp_path / "run", live.pid)
        with pytest.raises(SearchError, match=f"pid {live.pid}"):
            RunLock(tmp_path / "run").acquire()
        assert read_lock(tmp_path / "run" / ".lock")["pid"] == live.pid  # left alone
    finally:
        live.kill()
        live.wait()


def test_other_host_is_refused(tmp_path):
    write_lock(tmp_path / "run", 1, host="some-other-machine")
    with pytest.raises(SearchError, match="some-other-machine"):
        RunLock(tmp_path / "run").acquire()


def test_worker_role_uses_its_own_file(tmp_path):
    assert lock_path(tmp_path, "worker", "tuner1").name == ".lock.tuner1"
    with RunLock(tmp_path, role="chief"), RunLock(tmp_path, role="worker", tuner_id="tuner1") as w:
        assert read_lock(w.path)["role"] == "worker"
