"""Leaderboard: columns, order in both directions, --all, formats, partial files, CLI."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
from run_search import main

from results.errors import ResultsError
from results.leaderboard import (build_leaderboard, collect_trials, rows_to_csv, rows_to_json,
                                 rows_to_markdown, select_rows, trials_to_rows)


def test_columns_follow_cv_results(fake_run_dir: Path) -> None:
    rows = build_leaderboard(fake_run_dir, "cnn")
    cols = list(rows[0])
    assert cols[:9] == ["rank", "model", "trial_id", "status", "mean_val_auc", "std_val_auc",
                        "fold0_val_auc", "fold1_val_auc", "fold2_val_auc"]
    assert {"mean_val_loss", "mean_auc", "mean_recall", "n_params", "fold0_best_epoch",
            "fold2_best_epoch", "duration_s", "diagnosis", "reason"} <= set(cols)
    params = [c for c in cols if c.startswith("param_")]
    assert "param_filter_hierarchy" in params and "param_learning_rate" in params
    assert not any(c.startswith("param_tuner/") for c in cols)
    assert all(list(r) == cols for r in rows)  # every row has the same columns
    best = rows[0]
    assert best["trial_id"] == "0002" and best["rank"] == 1
    assert best["mean_val_auc"] == pytest.approx(0.95)
    assert best["fold1_val_auc"] == pytest.approx(0.94)
    assert best["param_optimizer"] == "rmsprop"


def test_order_max_and_min(fake_run_dir: Path) -> None:
    trials = [t for t in collect_trials(fake_run_dir, "cnn") if t["status"] == "COMPLETED"]
    best_first = [r["trial_id"] for r in trials_to_rows(trials, "val_auc", "max")]
    assert best_first == ["0002", "0000", "0001", "0003"]
    low_first = [r["trial_id"] for r in trials_to_rows(trials, "val_auc", "min")]
    assert low_first == ["0003", "0001", "0000", "0002"]
    by_acc = trials_to_rows(trials, "val_accuracy", "min")
    accs = [r["mean_val_accuracy"] for r in by_acc]
    assert accs == sorted(accs) and [r["rank"] for r in by_acc] == [1, 2, 3, 4]
    assert list(by_acc[0])[4] == "mean_val_accuracy"


def test_ties_share_rank(fake_run_dir: Path) -> None:
    trials = [t for t in collect_trials(fake_run_dir, "ann")]
    trials[1]["mean"]["val_auc"] = trials[0]["mean"]["val_auc"]
    ranks = sorted(r["rank"] for r in trials_to_rows(trials, "val_auc", "max"))
    assert ranks == [1, 2, 2]


def test_failed_and_running_are_unranked_last(fake_run_dir: Path) -> None:
    rows = build_leaderboard(fake_run_dir, "cnn")
    statuses = [(r["trial_id"], r["status"], r["rank"]) for r in rows]
    assert statuses[-2:] == [("0005", "RUNNING", None), ("0004", "FAILED", None)]
    running, failed = rows[-2], rows[-1]
    assert "1 fold(s) finished" in running["reason"] and "in progress" in running["reason"]
    assert running["fold0_val_auc"] == pytest.approx(0.97) and running["fold1_val_auc"] is None
    assert "max_params" in failed["reason"]
    top = select_rows(rows, top_k=10)
    assert [r["status"] for r in top] == ["COMPLETED"] * 4
    assert len(select_rows(rows, include_all=True)) == 6


def test_top_k_per_family(fake_run_dir: Path) -> None:
    rows = build_leaderboard(fake_run_dir, "both")
    top = select_rows(rows, top_k=2)
    assert [(r["model"], r["rank"]) for r in top] == [("cnn", 1), ("cnn", 2), ("ann", 1), ("ann", 2)]


def test_interrupted_trial_without_lock(fake_run_dir: Path) -> None:
    (fake_run_dir / ".lock").unlink()
    rows = build_leaderboard(fake_run_dir, "cnn")
    running = next(r for r in rows if r["status"] == "RUNNING")
    assert "interrupted" in running["reason"]


def test_half_written_files_are_skipped_with_a_note(fake_run_dir: Path, trial_writer) -> None:
    # kill -9 mid-write: a truncated cv.json, a truncated fold file, an empty trial folder.
    cv = fake_run_dir / "ann" / "trial_0001" / "cv.json"
    cv.write_text(cv.read_text()[:40])
    tdir = trial_writer(fake_run_dir / "ann", "0003", {"dense_layers": 2}, status="RUNNING",
                        fold_scores=[0.8, 0.9], folds_done=2, write_cv=False)
    (tdir / "fold1.json").write_text('{"fold": 1, "hist')
    (fake_run_dir / "ann" / "trial_0004").mkdir()
    notes: list[str] = []
    rows = build_leaderboard(fake_run_dir, "ann", notes=notes)
    by_id = {r["trial_id"]: r for r in rows}
    assert any("half-written" in n and "cv.json" in n for n in notes)
    assert any("fold1.json" in n for n in notes)
    assert any("trial_0004" in n for n in notes) and "0004" not in by_id
    # trial.json is still readable, so the trial shows, rebuilt from its fold files.
    assert by_id["0001"]["status"] == "COMPLETED" and by_id["0001"]["rank"] is not None
    assert by_id["0003"]["status"] == "RUNNING" and by_id["0003"]["fold0_val_auc"] == 0.8


def test_formats_round_trip(fake_run_dir: Path, tmp_path: Path) -> None:
    rows = build_leaderboard(fake_run_dir)
    rows_to_csv(rows, tmp_path / "lb.csv")
    with open(tmp_path / "lb.csv", newline="") as fh:
        back = list(csv.DictReader(fh))
    assert [r["trial_id"] for r in back] == [r["trial_id"] for r in rows]
    assert float(back[0]["mean_val_auc"]) == pytest.approx(rows[0]["mean_val_auc"])
    assert json.loads(rows_to_json(rows))[0]["trial_id"] == rows[0]["trial_id"]
    md = rows_to_markdown(rows).splitlines()
    assert md[0].startswith("| rank | model | trial_id") and len(md) == len(rows) + 2


def test_cli_writes_file_and_prints_table(fake_run_dir: Path, capsys) -> None:
    assert main(["leaderboard", "--run-dir", str(fake_run_dir), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "0002" in out and "leaderboard:" in out and "--all" in out
    with open(fake_run_dir / "leaderboard.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    # The run's file holds every trial, running and failed ones included.
    assert len(rows) == 9 and {r["status"] for r in rows} == {"COMPLETED", "RUNNING", "FAILED"}

    out_md = fake_run_dir / "lb.md"
    assert main(["leaderboard", "--run-dir", str(fake_run_dir), "--model", "cnn", "--all",
                 "--top-k", "1", "--out", str(out_md), "--no-plots"]) == 0
    text = out_md.read_text()
    assert "FAILED" in text and "RUNNING" in text and "max_params" in text

    assert main(["leaderboard", "--run-dir", str(fake_run_dir), "--format", "json",
                 "--top-k", "1", "--no-plots"]) == 0
    data = json.loads((fake_run_dir / "leaderboard.json").read_text())
    assert len(data) == 9


def test_top_k_never_truncates_the_runs_leaderboard(fake_run_dir: Path, capsys) -> None:
    assert main(["leaderboard", "--run-dir", str(fake_run_dir), "--no-plots"]) == 0
    full = (fake_run_dir / "leaderboard.csv").read_text()
    out = fake_run_dir / "top2.csv"
    assert main(["leaderboard", "--run-dir", str(fake_run_dir), "--top-k", "2", "--no-plots",
                 "--out", str(out)]) == 0
    assert (fake_run_dir / "leaderboard.csv").read_text() == full
    with open(out, newline="") as fh:
        top = [(r["model"], r["rank"]) for r in csv.DictReader(fh)]
    assert top == [("cnn", "1"), ("cnn", "2"), ("ann", "1"), ("ann", "2")]
    printed = capsys.readouterr().out.split("leaderboard:")[-2]
    assert "0003" not in printed.split("\n", 1)[1]  # cnn rank 4 is not printed


def test_all_still_honours_top_k(fake_run_dir: Path) -> None:
    rows = build_leaderboard(fake_run_dir, "cnn")
    shown = select_rows(rows, top_k=1, include_all=True)
    assert [(r["rank"], r["status"]) for r in shown] == [(1, "COMPLETED"), (None, "RUNNING"),
                                                         (None, "FAILED")]


def test_read_only_run_folder_still_prints_the_table(fake_run_dir: Path, monkeypatch,
                                                     capsys) -> None:
    import results.leaderboard_formats as formats

    def refuse(path: Path, text: str) -> None:
        raise PermissionError(13, "Permission denied", str(path) + ".tmp")

    # As a read-only folder does for a normal user (root, which runs CI here, bypasses chmod).
    monkeypatch.setattr(formats, "_atomic_write", refuse)
    assert main(["leaderboard", "--run-dir", str(fake_run_dir), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "0002" in out and "COMPLETED" in out
    assert "could not write the full leaderboard" in out and "Permission denied" in out
    assert "--out FILE" in out


def test_missing_run_dir_names_the_runs_that_exist(fake_run_dir: Path, tmp_path: Path,
                                                   capsys) -> None:
    runs = fake_run_dir.parent
    assert main(["leaderboard", "--run-dir", str(runs / "default"), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert str(fake_run_dir) in err and "--run-dir" in err
    assert main(["analyze", "--run-dir", str(runs / "default")]) == 2
    assert str(fake_run_dir) in capsys.readouterr().err


def test_leaderboard_does_not_import_keras(fake_run_dir: Path) -> None:
    import subprocess

    code = ("import sys; from results.leaderboard import build_leaderboard; "
            f"build_leaderboard({str(fake_run_dir)!r}); "
            "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


@pytest.mark.parametrize("setup", ["missing", "empty", "run_json_only"])
def test_empty_or_unknown_run_dir_is_a_clear_error(tmp_path: Path, setup: str, capsys) -> None:
    run_dir = tmp_path / "nope"
    if setup != "missing":
        run_dir.mkdir()
    if setup == "run_json_only":
        (run_dir / "run.json").write_text("{}")
    with pytest.raises(ResultsError, match="search"):
        build_leaderboard(run_dir)
    assert main(["leaderboard", "--run-dir", str(run_dir)]) == 2
    assert "run_search.py search" in capsys.readouterr().err


def test_stale_lock_of_a_killed_search_means_interrupted(fake_run_dir: Path) -> None:
    import socket
    import subprocess

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid now names no process, like a search killed with kill -9
    (fake_run_dir / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(),
                                                    "started": "x", "role": "chief"}))
    running = next(r for r in build_leaderboard(fake_run_dir, "cnn") if r["status"] == "RUNNING")
    assert running["reason"].startswith("interrupted")


def test_lock_liveness_comes_from_the_os_lock(fake_run_dir: Path) -> None:
    import os
    import socket

    from search.store.lock import RunLock

    # A record naming a live pid that holds no OS lock (the pid of a killed search, reused):
    # not a running search.
    (fake_run_dir / ".lock").write_text(json.dumps({"pid": os.getppid(), "host":
                                                    socket.gethostname(), "started": "x",
                                                    "role": "chief"}))
    running = next(r for r in build_leaderboard(fake_run_dir, "cnn") if r["status"] == "RUNNING")
    assert running["reason"].startswith("interrupted")
    with RunLock(fake_run_dir):  # a search really holding the folder
        running = next(r for r in build_leaderboard(fake_run_dir, "cnn")
                       if r["status"] == "RUNNING")
        assert running["reason"].startswith("in progress")


def test_trial_reading_lives_in_results_trials() -> None:
    import results.leaderboard as lb
    import results.trials as trials

    assert lb.read_trial is trials.read_trial and lb.collect_trials is trials.collect_trials
    assert lb.read_json is trials.read_json and lb.COMPLETED == trials.COMPLETED


def test_terminal_table_shows_clean_val_auc_beside_a_probe_objective():
    from results.leaderboard_formats import format_table

    rows = [{"rank": 1, "model": "cnn", "trial_id": "0000", "status": "COMPLETED",
             "mean_val_auc_geometric": 0.9892, "std_val_auc_geometric": 0.001,
             "fold0_val_auc_geometric": 0.99, "mean_val_auc": 0.9949, "n_params": 10,
             "duration_s": 1.0, "diagnosis": "good_fit"}]
    table = format_table(rows, "val_auc_geometric").splitlines()
    assert "val_auc " in table[0] + " " and "0.9949" in table[1]
    clean = format_table(rows, "val_auc").splitlines()
    assert clean[0].split().count("val_auc") == 1  # no second column for a clean objective


def test_csv_floats_are_rounded_without_losing_what_matters(tmp_path: Path) -> None:
    rows = [{"rank": 1, "mean_val_auc": 0.1 + 0.6, "param_learning_rate": 0.00031622776601683794,
             "duration_s": 1234.56789012, "n_params": 123456789, "reason": None}]
    text = rows_to_csv(rows, tmp_path / "lb.csv")
    assert "0.7000000000000001" not in text
    back = next(csv.DictReader(open(tmp_path / "lb.csv", newline="")))
    assert back["mean_val_auc"] == "0.7" and back["n_params"] == "123456789"
    assert float(back["param_learning_rate"]) == pytest.approx(0.00031622776601683794, rel=1e-7)
    assert float(back["duration_s"]) == pytest.approx(1234.56789012, rel=1e-7)
    assert back["reason"] == ""


@pytest.mark.parametrize("status", ["PRUNED", "FAILED"])
def test_a_configuration_whose_last_round_ended_badly_is_not_ranked_or_exported(
        fake_run_factory, trial_writer, status: str) -> None:
    from results.leaderboard import best_trials

    run_dir = fake_run_factory(with_running=False, with_failed=False)
    # 0002 (the best first round) promoted to round 1 as 0006, which was pruned / failed.
    values = {"tuner/trial_id": "0002", "tuner/round": 1, "tuner/epochs": 4}
    trial_writer(run_dir / "cnn", "0006", values, status=status, fold_scores=[0.5],
                 reason=f"{status.lower()} at fold 1")
    rows = build_leaderboard(run_dir, "cnn")
    assert rows[0]["trial_id"] == "0000" and rows[0]["rank"] == 1
    row = next(r for r in rows if r["trial_id"] in ("0002", "0006"))
    assert row["trial_id"] == "0006" and row["status"] == status and row["rank"] is None
    assert row["rounds"] == 2
    assert [t["trial_id"] for t in best_trials(run_dir, "cnn", 2)] == ["0000", "0001"]


def test_a_round_still_running_leaves_the_configuration_at_its_completed_round(
        fake_run_factory, trial_writer) -> None:
    run_dir = fake_run_factory(with_running=False, with_failed=False)
    values = {"tuner/trial_id": "0002", "tuner/round": 1, "tuner/epochs": 4}
    trial_writer(run_dir / "cnn", "0006", values, status="RUNNING", fold_scores=[0.99],
                 folds_done=1, write_cv=False)
    rows = build_leaderboard(run_dir, "cnn")
    assert rows[0]["trial_id"] == "0002" and rows[0]["rank"] == 1


def test_terminal_table_shows_the_whole_reason() -> None:
    from results.leaderboard_formats import format_table

    reason = ("over_budget: the model has 2,345,678 parameters, over the limit of 2,000,000 "
              "(--max-params). Fix: raise --max-params or narrow the space.")
    rows = [{"rank": None, "model": "cnn", "trial_id": "0001", "status": "FAILED",
             "reason": reason}]
    table = format_table(rows, "val_auc")
    assert reason in table and "..." not in table
    short = format_table(rows, "val_auc", max_reason=60)
    assert "raise --max-params" in short  # shortened, the fix kept


def test_a_family_the_run_did_not_search_gets_a_command_that_works(tmp_path: Path,
                                                                   trial_writer) -> None:
    """Resuming a transfer run with --model cnn is refused, so the hint must not suggest it."""
    run_dir = tmp_path / "run"
    trial_writer(run_dir / "transfer", "0001", {"backbone": "mobilenet_v3_small"})
    (run_dir / "run.json").write_text(json.dumps({"config": {"model": "transfer",
                                                             "objective": "val_auc"}}))
    with pytest.raises(ResultsError) as err:
        build_leaderboard(run_dir, "cnn")
    msg = str(err.value)
    assert "searched --model transfer" in msg and f"--run-dir {run_dir} --model cnn" not in msg


def test_resumed_then_cut_configuration_is_running_not_its_rung_score(fake_run_dir: Path) -> None:
    # A configuration that waited at a ladder rung (KerasTuner recorded it COMPLETED with the
    # rung's score), was resumed, and was cut by the budget: cv.json says RUNNING.
    tdir = fake_run_dir / "ann" / "trial_0002"
    cv = json.loads((tdir / "cv.json").read_text())
    cv.update(status="RUNNING", mean={}, std={}, folds=[])
    (tdir / "cv.json").write_text(json.dumps(cv))
    for fold in tdir.glob("fold*.json"):
        fold.unlink()
    assert json.loads((tdir / "trial.json").read_text())["status"] == "COMPLETED"
    notes: list[str] = []
    by_id = {r["trial_id"]: r for r in build_leaderboard(fake_run_dir, "ann", notes=notes)}
    assert by_id["0002"]["status"] == "RUNNING" and by_id["0002"]["rank"] is None
    assert not any("KerasTuner's score" in n for n in notes)
    assert [by_id[t]["rank"] for t in ("0000", "0001")] == [1, 2]


def test_each_family_table_shows_the_objective_it_is_ranked_by(fake_run_dir: Path) -> None:
    from results.leaderboard_output import write_leaderboard

    run = json.loads((fake_run_dir / "run.json").read_text())
    run["config"]["objectives"] = {"cnn": "val_auc", "ann": "val_auc_photometric"}
    (fake_run_dir / "run.json").write_text(json.dumps(run))
    for cv_path in (fake_run_dir / "ann").glob("trial_*/cv.json"):
        cv = json.loads(cv_path.read_text())
        # The photometric probe ranks the ANN trials the other way round from clean val_auc.
        for entry in [cv["mean"], *cv["folds"]]:
            entry["val_auc_photometric"] = 1.5 - entry["val_auc"]
        cv_path.write_text(json.dumps(cv))
    lines: list[str] = []
    write_leaderboard(fake_run_dir, top_k=5, plots=False, echo=lines.append)
    text = "\n".join(lines)
    assert "val_auc (max) for cnn, val_auc_photometric (max) for ann" in lines[0]
    ann_table = text[text.index("val_auc_photometric mean+-std"):]
    ann_rows = [line.split() for line in ann_table.splitlines()[1:] if " ann " in line]
    # Ranked by the photometric probe, and that is the column shown: 0001 (0.74) first.
    assert [(r[0], r[2], r[4]) for r in ann_rows] == [("1", "0001", "0.7400"),
                                                      ("2", "0000", "0.6800"),
                                                      ("3", "0002", "0.6300")]
