"""The real ``run_search.py search --role chief|worker`` over 127.0.0.1 on a tiny search.

The toy tests (test_distributed.py) cover the engine's failure handling quickly; these run the
service's own k-fold tuner end to end: trials spread over two workers, each trial id once, every
fold trained once, a complete leaderboard, and the lock (chief + workers share the run folder, a
second independent search is refused). JAX backend: it starts fastest.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from scale_helpers import ROOT, TINY_SPACE, Procs, free_port, wait_until

pytestmark = pytest.mark.slow

ENV = {"KERAS_BACKEND": "jax", "CXR_DIST_HEARTBEAT_S": "0.5", "CXR_DIST_DEAD_AFTER_S": "8",
       "CXR_DIST_ORACLE_TIMEOUT_S": "180"}


def _args(run: Path, data: Path, space: Path, role: str, port: int, n: int, *extra: str
          ) -> list[str]:
    return ["run_search.py", "search", "--data", str(data), "--model", "ann", "--tuner",
            "random", "--folds", "2", "--max-trials", str(n), "--max-epochs", "2",
            "--image-size", "16", "--space", str(space), "--run-dir", str(run), "--seed", "3",
            "--quiet", "--no-ladder", "--role", role, "--oracle", f"127.0.0.1:{port}", *extra]


def _fits(family_dir: Path) -> Counter:
    """(trial, fold) -> finished trainings, from the engine's ``fits.jsonl`` (start/end events).

    Also checks that no fold was started again after it had finished (no work repeated).
    """
    ends: Counter = Counter()
    for line in (family_dir / "fits.jsonl").read_text().splitlines():
        event = json.loads(line)
        key = (event["trial_id"], event["fold"])
        assert ends[key] == 0, f"fold {key} trained again after it had finished"
        if event["event"] == "end":
            ends[key] += 1
    return ends


@pytest.fixture
def space(tmp_path: Path) -> Path:
    path = tmp_path / "space.toml"
    path.write_text(TINY_SPACE)
    return path


def test_chief_and_two_workers_real_search(procs: Procs, tmp_path: Path, synthetic_root: Path,
                                           space: Path) -> None:
    port, run, n = free_port(), tmp_path / "run", 4
    chief = procs.start(_args(run, synthetic_root, space, "chief", port, n), "chief", ENV)
    workers = [procs.start(_args(run, synthetic_root, space, "worker", port, n, "--tuner-id", t),
                           t, ENV) for t in ("tuner1", "tuner2")]
    wait_until(lambda: (run / ".lock").exists() and (run / "run.json").exists(), 180,
               "the chief to lock the run folder")
    # A second, independent search on the same folder is refused while the chief runs.
    same_search = _args(run, synthetic_root, space, "chief", port, n)[:-4]  # no --role/--oracle
    other = subprocess.run([sys.executable, *same_search], cwd=ROOT, capture_output=True,
                           text=True, timeout=180, env={**os.environ, **ENV})
    assert other.returncode == 2 and "in use" in other.stderr, other.stderr[-2000:]
    for p in (chief, *workers):
        assert procs.wait(p, 420) == 0, procs.dump()
    fam = run / "ann"
    cvs = {json.loads(p.read_text())["trial_id"]: json.loads(p.read_text())
           for p in fam.glob("trial_*/cv.json")}
    assert len(cvs) == n and all(c["status"] == "COMPLETED" for c in cvs.values())
    assert {c["tuner_id"] for c in cvs.values()} == {"tuner1", "tuner2"}
    assert all(len(c["folds"]) == 2 for c in cvs.values())
    assert set(_fits(fam).values()) == {1} and len(_fits(fam)) == 2 * n
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    assert not (run / ".lock").exists()
    board = subprocess.run([sys.executable, "run_search.py", "leaderboard", "--run-dir", str(run),
                            "--no-plots"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                           env={**os.environ, **ENV})
    assert board.returncode == 0, board.stderr[-2000:]
    csvs = list(run.rglob("leaderboard*.csv"))
    assert csvs and len(csvs[0].read_text().strip().splitlines()) == n + 1


def test_worker_sigkilled_real_search(procs: Procs, tmp_path: Path, synthetic_root: Path,
                                      space: Path) -> None:
    port, run, n = free_port(), tmp_path / "run", 3
    chief = procs.start(_args(run, synthetic_root, space, "chief", port, n), "chief", ENV)
    w1 = procs.start(_args(run, synthetic_root, space, "worker", port, n, "--tuner-id", "tuner1"),
                     "tuner1", ENV)
    wait_until(lambda: any((run / "ann").glob("trial_*/fold0.json")), 300, "a first fold")
    procs.kill(w1, signal.SIGKILL)
    w1b = procs.start(_args(run, synthetic_root, space, "worker", port, n, "--tuner-id",
                            "tuner1"), "tuner1b", ENV)
    for p in (chief, w1b):
        assert procs.wait(p, 420) == 0, procs.dump()
    cvs = [json.loads(p.read_text()) for p in (run / "ann").glob("trial_*/cv.json")]
    assert len(cvs) == n and all(c["status"] == "COMPLETED" for c in cvs)
    assert set(_fits(run / "ann").values()) == {1}


def test_chief_sigkilled_and_restarted_real_search(procs: Procs, tmp_path: Path,
                                                   synthetic_root: Path, space: Path) -> None:
    port, run, n = free_port(), tmp_path / "run", 3
    chief = procs.start(_args(run, synthetic_root, space, "chief", port, n), "chief", ENV)
    w1 = procs.start(_args(run, synthetic_root, space, "worker", port, n, "--tuner-id", "tuner1"),
                     "tuner1", ENV)
    wait_until(lambda: any((run / "ann").glob("trial_*/fold0.json")), 300, "a first fold")
    procs.kill(chief, signal.SIGKILL)
    # Same command again: the stale lock is taken over, the oracle reloaded, the worker's
    # trial held for it; the worker retried its calls meanwhile.
    chief2 = procs.start(_args(run, synthetic_root, space, "chief", port, n), "chief2", ENV)
    for p in (chief2, w1):
        assert procs.wait(p, 420) == 0, procs.dump()
    cvs = [json.loads(p.read_text()) for p in (run / "ann").glob("trial_*/cv.json")]
    assert len(cvs) == n and all(c["status"] == "COMPLETED" for c in cvs)
    assert set(_fits(run / "ann").values()) == {1}
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
