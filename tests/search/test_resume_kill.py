"""Resume after kill -9 at three moments, and a clean stop on SIGTERM (subprocesses).

The kill moments are deterministic: ``CXR_TEST_KILL_AT`` makes the search SIGKILL itself
(``search/runtime/failpoints.py``). After the rerun of the same command, the run must hold exactly
the
requested trials, each id once, all completed, and ``fits.jsonl`` must show that no finished
fold was trained again.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from search_helpers import REPO, assert_no_refit, cli_args, cv_records, fit_events, run_cli

KILLS = [
    pytest.param("trial:0:fold:0:epoch:0", id="inside-first-trial", marks=pytest.mark.slow),
    pytest.param("trial:2:fold:1:epoch:0", id="mid-fold-later-trial"),
    pytest.param("after_trial:1", id="between-trials", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("kill_at", KILLS)
def test_resume_after_sigkill(tmp_path, synthetic_root, kill_at):
    args = cli_args(tmp_path, synthetic_root)  # 3 trials x 2 folds x 2 epochs
    first = run_cli(args, {"CXR_TEST_KILL_AT": kill_at})
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    run_dir = tmp_path / "run"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
    assert (run_dir / ".lock").exists()  # stale lock left by the killed process
    before = fit_events(run_dir / "ann")

    second = run_cli(args)
    assert second.returncode == 0, second.stderr[-3000:]
    log = (run_dir / "search.log").read_text()
    assert "took over a stale lock" in log and "resuming:" in log
    records = cv_records(run_dir / "ann")
    assert sorted(records) == ["trial_0000", "trial_0001", "trial_0002"]
    assert all(r["status"] == "COMPLETED" and len(r["folds"]) == 2 for r in records.values())
    oracle = json.loads((run_dir / "ann" / "oracle.json").read_text())
    assert sorted(oracle["end_order"]) == ["0000", "0001", "0002"]  # no id twice
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    assert_no_refit(run_dir / "ann")
    ends = Counter((e["trial_id"], e["fold"]) for e in fit_events(run_dir / "ann")
                   if e["event"] == "end")
    assert len(ends) == 6 and set(ends.values()) == {1}
    # what had finished before the kill was kept, not redone
    done_before = {(e["trial_id"], e["fold"]) for e in before if e["event"] == "end"}
    starts = Counter((e["trial_id"], e["fold"]) for e in fit_events(run_dir / "ann")
                     if e["event"] == "start")
    assert all(starts[key] == 1 for key in done_before)
    if kill_at.startswith("trial:2"):
        assert done_before >= {("0002", 0)} and starts[("0002", 1)] == 2


def test_sigterm_stops_cleanly_and_prints_resume_command(tmp_path, synthetic_root):
    args = cli_args(tmp_path, synthetic_root)
    env_cmd = [sys.executable, "-m", "search", *args]
    import os

    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("CXR_TEST_KILL_AT", None)
    proc = subprocess.Popen(env_cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    fits = tmp_path / "run" / "ann"
    deadline = time.time() + 180
    while time.time() < deadline and not any(e["event"] == "end" for e in fit_events(fits)):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert "Resume with:" in err and "-m search search" in err and "--overwrite" not in err
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["status"] == "interrupted"
    assert not (tmp_path / "run" / ".lock").exists()
    assert any(e["event"] == "end" for e in fit_events(fits))  # finished folds kept
