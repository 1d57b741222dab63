"""benchmarks/quiet.py: a timing run is flagged when other work shared the machine."""

from __future__ import annotations

import itertools

import pytest

from benchmarks import quiet


@pytest.fixture
def machine(monkeypatch):
    """A machine whose busy time, own CPU time, clock and load average the test sets."""
    state = {"busy": [0.0, 0.0], "own": [0.0, 0.0], "load": [0.3, 0.4], "slept": []}
    counters = {k: itertools.cycle(state[k]) for k in ("busy", "own", "load")}
    clock = itertools.count(0.0, 100.0)  # enter at 0 s, exit at 100 s
    monkeypatch.setattr(quiet, "_busy_seconds", lambda: next(counters["busy"]))
    monkeypatch.setattr(quiet, "_own_seconds", lambda: next(counters["own"]))
    monkeypatch.setattr(quiet.os, "getloadavg", lambda: (next(counters["load"]), 0.0, 0.0))
    monkeypatch.setattr(quiet.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(quiet.time, "sleep", state["slept"].append)
    return state


def run(machine, *, busy, own, load=(0.3, 0.4)):
    machine["busy"][:], machine["own"][:], machine["load"][:] = busy, own, load
    with quiet.QuietRecord(cooldown_s=90) as q:
        pass
    return q.as_dict()


def test_own_cpu_is_not_counted_as_other_work(machine):
    # 190 busy core-seconds in 100 s, 185 of them this process and its children.
    r = run(machine, busy=(10.0, 200.0), own=(5.0, 190.0))
    assert r["other_cores"] == pytest.approx(0.05)
    assert r["loaded"] is False
    assert machine["slept"] == [90]  # the end load is read after the cool-down
    assert (r["load_start"], r["load_end"]) == (0.3, 0.4)


def test_other_processes_flag_the_run(machine):
    # Half a core of someone else's work throughout.
    r = run(machine, busy=(0.0, 150.0), own=(0.0, 100.0))
    assert r["other_cores"] == pytest.approx(0.5)
    assert r["loaded"] is True


@pytest.mark.parametrize("load", [(2.0, 0.3), (0.3, 1.6)])
def test_a_high_load_at_either_end_flags_the_run(machine, load):
    r = run(machine, busy=(0.0, 100.0), own=(0.0, 100.0), load=load)
    assert r["loaded"] is True
