"""Distributed search over 127.0.0.1: chief + workers, worker and chief deaths.

The processes run ``dist_toy_main.py`` (KerasTuner's real chief/worker engine, patched by
``search.distributed``, with a toy k-fold trial that sleeps instead of training) under the JAX
backend because it imports fastest. Every process has a timeout and is killed at teardown.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from scale_helpers import Procs, free_port, wait_until

from search import distributed as dist
from search.errors import SearchError

TOY = "tests/scale/dist_toy_main.py"
# JAX starts fastest; the README's test command installs TensorFlow only, so fall back to it.
ENV = {"KERAS_BACKEND": "jax" if importlib.util.find_spec("jax") else "tensorflow",
       "CXR_DIST_HEARTBEAT_S": "0.5", "CXR_DIST_DEAD_AFTER_S": "6",
       "CXR_DIST_ORACLE_TIMEOUT_S": "90"}


def _start(procs: Procs, run: Path, role: str, port: int, *extra: str, tuner: str | None = None,
           env: dict[str, str] | None = None) -> object:
    args = [TOY, str(run), "--role", role, "--oracle", f"127.0.0.1:{port}", *extra]
    if tuner:
        args += ["--tuner-id", tuner]
    return procs.start(args, tuner or role, env={**ENV, **(env or {})})


def _trials(run: Path) -> dict[str, dict]:
    out = {}
    for path in sorted((run / "toy").glob("trial_*/trial.json")):
        trial = json.loads(path.read_text())
        out[trial["trial_id"]] = trial
    return out


def _fits(run: Path) -> list[tuple[str, int, str]]:
    fits = []
    for path in (run / "toy").glob("trial_*/fits.jsonl"):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            fits.append((path.parent.name, rec["fold"], rec["tuner_id"]))
    return fits


def _check_complete(run: Path, n: int, folds: int) -> None:
    trials = _trials(run)
    assert sorted(trials) == [str(i) for i in range(n)], trials.keys()
    assert all(t["status"] == "COMPLETED" for t in trials.values()), \
        {k: t["status"] for k, t in trials.items()}
    # Each (trial, fold) trained exactly once: nothing lost, nothing duplicated.
    counts = Counter((trial, fold) for trial, fold, _ in _fits(run))
    assert sorted(counts) == sorted((f"trial_{i}", k) for i in range(n) for k in range(folds))
    assert set(counts.values()) == {1}, counts
    for i in range(n):
        cv = json.loads((run / "toy" / f"trial_{i}" / "cv.json").read_text())
        assert cv["status"] == "COMPLETED" and cv["folds"] == folds
    # Leaderboard view: every trial has a score, sortable by the objective.
    scores = [t["score"] for t in trials.values()]
    assert all(isinstance(s, float) for s in scores)


def test_resolve_role_cli_and_env() -> None:
    assert dist.resolve_role(None, None, environ={}) is None
    chief = dist.resolve_role("chief", "0.0.0.0:8000", environ={})
    assert chief.is_chief and chief.environ() == {
        "KERASTUNER_TUNER_ID": "chief", "KERASTUNER_ORACLE_IP": "0.0.0.0",
        "KERASTUNER_ORACLE_PORT": "8000"}
    assert chief.for_family(1).port == 8001
    worker = dist.resolve_role("worker", "10.0.0.5:8000", "tuner3", environ={})
    assert (worker.role, worker.tuner_id, worker.host) == ("worker", "tuner3", "10.0.0.5")
    # KerasTuner's own variables are honoured without any option.
    env = {"KERASTUNER_TUNER_ID": "tuner7", "KERASTUNER_ORACLE_IP": "h",
           "KERASTUNER_ORACLE_PORT": "9"}
    assert dist.resolve_role(environ=env) == dist.DistributedRole("worker", "tuner7", "h", 9)
    assert dist.resolve_role(environ={**env, "KERASTUNER_TUNER_ID": "chief"}).is_chief
    assert dist.resolve_role("worker", "h:1", environ={"SLURM_PROCID": "4"}).tuner_id == "tuner4"
    for bad in [dict(role="worker"), dict(role="boss", oracle="h:1"),
                dict(role="worker", oracle="h:1", tuner_id="chief2"),
                dict(role="worker", oracle="h"), dict(oracle="h:70000", role="chief"),
                dict(tuner_id="tuner1")]:
        with pytest.raises(SearchError):
            dist.resolve_role(**bad, environ={})


def test_role_environment_restores() -> None:
    import os

    role = dist.DistributedRole("worker", "tuner1", "127.0.0.1", 1234)
    before = {k: os.environ.get(k) for k in dist.ENV_KEYS}
    with dist.role_environment(role):
        assert os.environ["KERASTUNER_TUNER_ID"] == "tuner1"
    assert {k: os.environ.get(k) for k in dist.ENV_KEYS} == before


def test_wait_for_oracle_times_out_with_advice() -> None:
    start = time.monotonic()
    with pytest.raises(SearchError, match="No chief answered"):
        dist.wait_for_oracle("127.0.0.1", free_port(), timeout_s=1.5, log=lambda _: None)
    assert time.monotonic() - start < 15


def test_chief_and_two_workers_share_the_trials(procs: Procs, tmp_path: Path) -> None:
    port, run, n, folds = free_port(), tmp_path / "run", 6, 2
    # Workers first: they must wait for a chief that is slow to start (#990).
    w1 = _start(procs, run, "worker", port, "--max-trials", str(n), "--folds", str(folds),
                "--fold-s", "0.4", tuner="tuner1")
    w2 = _start(procs, run, "worker", port, "--max-trials", str(n), "--folds", str(folds),
                "--fold-s", "0.4", tuner="tuner2")
    time.sleep(1.0)
    chief = _start(procs, run, "chief", port, "--max-trials", str(n))
    for p in (chief, w1, w2):
        assert procs.wait(p, 150) == 0, procs.dump()
    _check_complete(run, n, folds)
    ran_by = {json.loads(p.read_text())["tuner_id"]
              for p in (run / "toy").glob("trial_*/cv.json")}
    assert ran_by == {"tuner1", "tuner2"}
    assigned = [r for r in dist.read_assignments(run / "toy") if r["event"] == "assigned"]
    assert sorted(r["trial_id"] for r in assigned) == [str(i) for i in range(n)]


def _wait_first_fold(run: Path, tuner: str, timeout: float) -> str:
    """Returns the trial in which ``tuner`` finished a fold (and has more to do)."""
    found: list[str] = []

    def cond() -> bool:
        for trial, fold, who in _fits(run):
            if who == tuner and fold == 0:
                found.append(trial)
                return True
        return False

    wait_until(cond, timeout, f"{tuner} to finish a first fold")
    return found[0].removeprefix("trial_")


@pytest.mark.slow  # ~20 s each; CI runs them (./test.sh --slow)
@pytest.mark.parametrize("restart", [True, False], ids=["restarted", "never_back"])
def test_worker_killed_mid_trial(procs: Procs, tmp_path: Path, restart: bool) -> None:
    port, run, n, folds = free_port(), tmp_path / "run", 4, 3
    common = ["--max-trials", str(n), "--folds", str(folds), "--fold-s", "1.0"]
    # Restarted: a long grace, so the trial can only come back through the same tuner id.
    # Never back: a short one, so the chief hands the trial to the other worker.
    grace = {"CXR_DIST_DEAD_AFTER_S": "120" if restart else "4"}
    chief = _start(procs, run, "chief", port, "--max-trials", str(n), env=grace)
    w1 = _start(procs, run, "worker", port, *common, tuner="tuner1")
    w2 = _start(procs, run, "worker", port, *common, tuner="tuner2")
    victim = _wait_first_fold(run, "tuner1", 120)
    procs.kill(w1, signal.SIGKILL)
    assert not (run / "toy" / f"trial_{victim}" / "cv.json").exists()
    if restart:
        w1b = _start(procs, run, "worker", port, *common, tuner="tuner1")
        assert procs.wait(w1b, 150) == 0, procs.dump()
    for p in (chief, w2):
        assert procs.wait(p, 150) == 0, procs.dump()
    _check_complete(run, n, folds)
    events = [(r["event"], r["trial_id"], r["tuner_id"])
              for r in dist.read_assignments(run / "toy")]
    if restart:
        # Same tuner id: KerasTuner hands its ongoing trial straight back.
        assert ("resumed", victim, "tuner1") in events
    else:
        assert ("requeued", victim, "tuner1") in events
        assert ("assigned", victim, "tuner2") in events
        cv = json.loads((run / "toy" / f"trial_{victim}" / "cv.json").read_text())
        assert cv["tuner_id"] == "tuner2"
    # The victim's first fold was kept: it was trained once, by the worker that died.
    assert ("trial_" + victim, 0, "tuner1") in _fits(run)


@pytest.mark.slow  # ~20 s each; CI runs them (./test.sh --slow)
def test_chief_killed_and_restarted(procs: Procs, tmp_path: Path) -> None:
    port, run, n, folds = free_port(), tmp_path / "run", 5, 2
    common = ["--max-trials", str(n), "--folds", str(folds), "--fold-s", "0.8"]
    chief = _start(procs, run, "chief", port, "--max-trials", str(n))
    w1 = _start(procs, run, "worker", port, *common, tuner="tuner1")
    w2 = _start(procs, run, "worker", port, *common, tuner="tuner2")
    wait_until(lambda: sum(r["event"] == "ended" for r in dist.read_assignments(run / "toy"))
               >= 1, 120, "a first trial to end")
    procs.kill(chief, signal.SIGKILL)
    time.sleep(1.0)
    chief2 = _start(procs, run, "chief", port, "--max-trials", str(n))
    for p in (chief2, w1, w2):
        assert procs.wait(p, 150) == 0, procs.dump()
    _check_complete(run, n, folds)
    assert "oracle serving" in Path(chief2.log_path).read_text()


@pytest.mark.slow  # ~20 s each; CI runs them (./test.sh --slow)
def test_time_budget_stops_handing_out_trials(procs: Procs, tmp_path: Path) -> None:
    port, run = free_port(), tmp_path / "run"
    common = ["--max-trials", "50", "--folds", "1", "--fold-s", "0.5"]
    chief = _start(procs, run, "chief", port, "--max-trials", "50", "--budget-s", "4")
    w1 = _start(procs, run, "worker", port, *common, tuner="tuner1")
    for p in (chief, w1):
        assert procs.wait(p, 120) == 0, procs.dump()
    trials = _trials(run)
    assert 0 < len(trials) < 50
    assert "time budget spent" in Path(chief.log_path).read_text()


def test_condition_proto_without_stray_print(capsys: pytest.CaptureFixture) -> None:
    from keras_tuner.src.engine import conditions

    originals = {v: conditions.Parent("p", [v]).to_proto() for v in ("a", True, 3, 0.5)}
    dist.install()
    capsys.readouterr()
    for value, expected in originals.items():
        assert conditions.Parent("p", [value]).to_proto() == expected
    assert capsys.readouterr().out == ""


def test_membership_refuses_a_worker_of_another_chief(tmp_path: Path) -> None:
    role = dist.DistributedRole("chief", "chief", "0.0.0.0", 8000)
    with pytest.raises(SearchError, match="not started by a distributed chief"):
        dist.check_membership(tmp_path, dist.DistributedRole("worker", "w1", "h", 8000))
    dist.write_membership(tmp_path, role, ["cnn", "ann"])
    assert dist.check_membership(tmp_path, dist.DistributedRole("worker", "w1", "h", 8000))[
        "families"] == {"cnn": 8000, "ann": 8001}
    with pytest.raises(SearchError, match="port 8000"):
        dist.check_membership(tmp_path, dist.DistributedRole("worker", "w1", "h", 9000))
    assert not dist.family_done(tmp_path, "cnn")
    dist.mark_family_done(tmp_path, "cnn", "completed")
    assert dist.family_done(tmp_path, "cnn")
    # A worker never waits for a family its chief has finished.
    assert dist.worker_join_family(tmp_path, role, 0, "cnn", log=lambda _: None) is False
