"""Pruning inside a fold (search.pruning), the cost rules (search.cost) and the judge that
applies them at each epoch end (search.fold_judge)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from search_helpers import cv_records, fit_events, tiny_config

from search import cost, pruning
from search.engine import run_search_job
from search.fold_judge import TrialJudge


def _peer(values, finished=True, direction="max"):
    return pruning.curve({"val_auc": values}, "val_auc", direction, finished)


def test_rungs_grow_geometrically_below_the_rounds_last_epoch():
    assert pruning.grace_for(3) == 4 and pruning.grace_for(6) == 7 and pruning.grace_for(0) == 2
    assert pruning.rungs(30, grace=pruning.grace_for(3)) == [4, 12]
    assert pruning.rungs(30, grace=2) == [2, 6, 18]
    assert pruning.rungs(10, grace=1) == [1, 3, 9]
    assert pruning.rungs(2, grace=2) == []  # the fold ends at 2 anyway
    assert pruning.rungs(1, grace=2) == []


def test_running_best_treats_nan_as_worst():
    assert pruning.running_best([0.5, float("nan"), 0.7, 0.6], "max") == [0.5, 0.5, 0.7, 0.7]
    assert pruning.running_best([0.5, 0.4, 0.6], "min") == [0.5, 0.4, 0.4]


def test_verdict_compares_with_the_top_third_at_the_same_epoch_not_the_best():
    peers = [_peer([0.60, 0.99]), _peer([0.60, 0.90]), _peer([0.60, 0.85]),
             _peer([0.60, 0.80]), _peer([0.60, 0.70]), _peer([0.60, 0.50])]
    kw = dict(metric="val_auc", direction="max", margin=0.05)
    # Top third of 6 peers: rank 2, 0.90. Within 0.05 of it goes on, although 0.14 below the best.
    assert pruning.verdict(0.85, 2, 0, peers, **kw) is None
    reason = pruning.verdict(0.84, 2, 0, peers, **kw)
    assert reason.startswith("pruned in fold 1 at epoch 2: val_auc 0.8400")
    assert "0.9000" in reason and "6 earlier trials" in reason
    # At epoch 1 every peer is at 0.60: a trial there goes on.
    assert pruning.verdict(0.58, 1, 0, peers, **kw) is None


def test_verdict_counts_early_stopped_peers_but_not_pruned_ones():
    peers = [_peer([0.95], finished=True), _peer([0.95], finished=True),
             _peer([0.99], finished=False), _peer([0.99], finished=False)]
    kw = dict(metric="val_auc", direction="max", margin=0.05, min_peers=2)
    # At epoch 3 only the two early-stopped peers count (0.95 each); pruned ones did not reach it.
    assert pruning.verdict(0.91, 3, 0, peers, **kw) is None
    assert pruning.verdict(0.89, 3, 0, peers, **kw) is not None
    # Too few peers reached the rung: nothing is judged.
    assert pruning.verdict(0.10, 3, 0, peers, **{**kw, "min_peers": 3}) is None
    assert pruning.verdict(0.10, 1, 0, [], **kw) is None


def test_verdict_for_a_loss_uses_a_relative_margin():
    peers = [_peer([0.4], direction="min") for _ in range(3)]
    kw = dict(metric="val_loss", direction="min", margin=0.25)
    assert pruning.verdict(0.49, 1, 0, peers, **kw) is None
    assert "above" in pruning.verdict(0.51, 1, 0, peers, **kw)
    assert pruning.verdict(float("nan"), 1, 0, peers, **kw) is not None


def test_peer_curves_read_finished_and_pruned_folds_of_the_same_budget(tmp_path):
    def trial(tid, budget, fold_file, values):
        d = tmp_path / f"trial_{tid}"
        d.mkdir()
        (d / "cv.json").write_text(json.dumps(
            {"trial_id": tid, "hyperband": {"epochs": budget} if budget else None}))
        (d / fold_file).write_text(json.dumps({"history": {"val_auc": values}}))

    trial("0000", None, "fold0.json", [0.5, 0.9])
    trial("0001", None, "pruned_fold0.json", [0.4])
    trial("0002", 10, "fold0.json", [0.99])        # another budget
    trial("0003", None, "fold1.json", [0.99])      # another fold
    trial("0004", None, "fold0.json", [0.7])       # the judged trial itself
    peers = pruning.peer_curves(tmp_path, 0, metric="val_auc", direction="max", budget=None,
                                exclude="0004")
    assert peers == [{"best": [0.5, 0.9], "finished": True},
                     {"best": [0.4], "finished": False}]


def test_cost_estimates_and_rules():
    assert cost.typical_fold_epochs([], 30) == 30.0
    assert cost.typical_fold_epochs([8, 12, 30], 30) == 12.0
    assert cost.remaining_seconds(seconds_per_epoch=10, epochs_done=2, fold_epochs=12,
                                  max_epochs=30, folds_left=2) == 10 * (10 + 24)
    # Past its typical length a fold still needs at least one more epoch.
    assert cost.remaining_seconds(seconds_per_epoch=10, epochs_done=20, fold_epochs=12,
                                  max_epochs=30, folds_left=0) == 10
    assert cost.cannot_finish_reason(needed_s=600, left_s=None, fold=0, epoch=2) is None
    assert cost.cannot_finish_reason(needed_s=600, left_s=601, fold=0, epoch=2) is None
    assert cost.cannot_finish_reason(needed_s=600, left_s=0, fold=0, epoch=2) is None
    reason = cost.cannot_finish_reason(needed_s=600, left_s=300, fold=1, epoch=2)
    assert "fold 2 at epoch 2 by cost" in reason and "10.0 min" in reason and "5.0 min" in reason
    share = dict(spent_s=500, budget_s=1800, share=0.25, fold=0, epoch=3)
    assert "more than 25% of the 30-min budget" in cost.share_reason(
        judged=False, has_peers=True, **share)
    assert cost.share_reason(judged=True, has_peers=True, **share) is None
    assert cost.share_reason(judged=False, has_peers=False, **share) is None  # first trial
    assert cost.share_reason(judged=False, has_peers=True, **{**share, "budget_s": None}) is None


class _Budget:
    def __init__(self, minutes, remaining_s):
        self.minutes, self.remaining_s = minutes, remaining_s


def _judge(tmp_path, budget, *, clock, has_peers=True, pruning_on=False):
    return TrialJudge(family_dir=tmp_path, trial_id="0001", metric="val_auc", direction="max",
                      budget_epochs=None, n_folds=3, pruning=pruning_on, time_budget=budget,
                      max_share=0.25, has_peers=has_peers, typical_epochs=10, clock=clock)


def test_judge_stops_a_configuration_that_cannot_finish_in_the_budget_left(tmp_path):
    now = [0.0]
    judge = _judge(tmp_path, _Budget(30, remaining_s=200.0), clock=lambda: now[0])
    # After one epoch (tracing included) nothing is decided from speed.
    assert judge.decide(0, 1, 10, [0.6], [60.0], [], set()) is None
    # 10 s per epoch: 8 more epochs + 2 folds x 10 = 280 s > 200 s left.
    reason = judge.decide(0, 2, 10, [0.6, 0.7], [60.0, 10.0], [], set())
    assert "by cost" in reason and judge.stop[1] == "cost"
    # With room left it goes on.
    judge = _judge(tmp_path, _Budget(30, remaining_s=1000.0), clock=lambda: now[0])
    assert judge.decide(0, 2, 10, [0.6, 0.7], [60.0, 10.0], [], set()) is None
    # Until a trial has completed the budget cut (resumable) is left to do it.
    judge = _judge(tmp_path, _Budget(30, remaining_s=200.0), clock=lambda: now[0])
    judge.has_completed = False
    assert judge.decide(0, 2, 10, [0.6, 0.7], [60.0, 10.0], [], set()) is None


def test_judge_share_rule_spares_judged_and_first_trials(tmp_path):
    now = [0.0]
    budget = _Budget(10, remaining_s=10_000.0)
    judge = _judge(tmp_path, budget, clock=lambda: now[0])
    now[0] = 151.0  # over 25% of 10 minutes
    assert "--max-trial-share" in judge.decide(0, 2, 10, [0.6, 0.7], [1.0, 1.0], [], set())
    first = _judge(tmp_path, budget, clock=lambda: now[0], has_peers=False)
    assert first.decide(0, 2, 10, [0.6, 0.7], [1.0, 1.0], [], set()) is None
    judged = _judge(tmp_path, budget, clock=lambda: now[0], pruning_on=True)
    peers = [_peer([0.7, 0.7]) for _ in range(pruning.MIN_PEERS)]
    # Passing a rung with enough peers counts as judged: the share rule no longer applies.
    assert judged.decide(0, 2, 10, [0.6, 0.7], [1.0, 1.0], peers, {2}) is None
    assert judged.judged
    # No time budget: no cost rule at all.
    assert _judge(tmp_path, _Budget(None, None), clock=lambda: now[0]).decide(
        0, 2, 10, [0.6, 0.7], [1.0, 1e6], [], set()) is None


def test_a_hopeless_curve_is_pruned_inside_its_fold_and_resumes_as_pruned(
        tmp_path, synthetic_root, monkeypatch):
    from results.leaderboard import build_leaderboard

    # Judge at epoch 2 (patience 1 + 1) against one peer with a margin no curve can meet: the
    # first trial completes, every later one stops at its second epoch.
    monkeypatch.setattr(pruning, "MIN_PEERS", 1)
    monkeypatch.setattr(pruning, "MARGIN", -10.0)
    cfg = tiny_config(tmp_path, synthetic_root, max_trials=3, max_epochs=3, patience=1,
                      pruning=True)
    fam = run_search_job(cfg)["families"]["ann"]
    assert (fam["trials_completed"], fam["trials_pruned"], fam["trials_failed"]) == (1, 2, 0)
    family_dir = Path(cfg.run_dir) / "ann"
    records = cv_records(family_dir)
    for tid in ("trial_0001", "trial_0002"):
        rec = records[tid]
        assert rec["status"] == "PRUNED" and rec["folds"] == []
        assert rec["reason"].startswith("pruned in fold 1 at epoch 2")
        assert rec["stopped_in_fold"]["rule"] == "rung"
        assert rec["stopped_in_fold"]["best"]["val_auc_geometric"] is not None
        partial = json.loads((family_dir / tid / "pruned_fold0.json").read_text())
        assert partial["epochs_trained"] == 2 and partial["stopped_at_epoch"] == 2
        assert not (family_dir / tid / "fold0.json").exists()
    events = fit_events(family_dir)
    rows = build_leaderboard(cfg.run_dir, "ann")
    assert [(r["trial_id"], r["rank"], r["status"]) for r in rows] == [
        ("0000", 1, "COMPLETED"), ("0001", None, "PRUNED"), ("0002", None, "PRUNED")]
    log = (Path(cfg.run_dir) / "search.log").read_text()
    assert "PRUNED (pruned in fold 1 at epoch 2" in log
    assert "2 pruned (2 inside a fold, 0 after a fold)" in log
    # Rerunning the finished search trains nothing again.
    run_search_job(tiny_config(tmp_path, synthetic_root, max_trials=3, max_epochs=3,
                               patience=1, pruning=True))
    assert fit_events(family_dir) == events


def test_no_pruning_flag_trains_every_epoch(tmp_path, synthetic_root, monkeypatch):
    monkeypatch.setattr(pruning, "MIN_PEERS", 1)
    monkeypatch.setattr(pruning, "MARGIN", -10.0)
    cfg = tiny_config(tmp_path, synthetic_root, max_trials=2, max_epochs=3, patience=1,
                      pruning=False)
    fam = run_search_job(cfg)["families"]["ann"]
    assert (fam["trials_completed"], fam["trials_pruned"]) == (2, 0)


def test_a_configuration_that_cannot_finish_stops_by_cost(tmp_path, synthetic_root,
                                                          monkeypatch):
    # After the first trial completes, every configuration looks too slow for the budget
    # left: each stops after its second epoch, saying so, and the search goes on drawing.
    real = cost.remaining_seconds
    monkeypatch.setattr(cost, "remaining_seconds",
                        lambda **kw: 1e9 if kw["epochs_done"] >= 2 else real(**kw))
    cfg = tiny_config(tmp_path, synthetic_root, max_trials=3, max_epochs=3,
                      time_budget_min=60)
    fam = run_search_job(cfg)["families"]["ann"]
    assert (fam["trials_completed"], fam["trials_pruned"]) == (1, 2)
    records = cv_records(Path(cfg.run_dir) / "ann")
    assert records["trial_0000"]["status"] == "COMPLETED"  # nothing completed before it
    for tid in ("trial_0001", "trial_0002"):
        rec = records[tid]
        assert "by cost" in rec["reason"] and rec["stopped_in_fold"]["rule"] == "cost"
        assert rec["stopped_in_fold"]["epoch"] == 2


@pytest.mark.parametrize("share", [0.0, 1.5])
def test_max_trial_share_is_validated(share):
    from search.config import SearchConfig, validate
    from search.errors import SearchError

    with pytest.raises(SearchError, match="--max-trial-share"):
        validate(SearchConfig(max_trial_share=share))


def test_a_trial_pruned_in_its_first_fold_reports_its_partial_score_also_after_repair():
    from search.fold_records import oracle_metrics
    from search.kt_files import trial_state_from_cv
    from search.oracles import PRUNED_METRIC

    cv = {"trial_id": "0004", "status": "PRUNED", "objective": "val_auc_geometric",
          "direction": "max", "mean": {}, "hyperparameters": {},
          "stopped_in_fold": {"fold": 0, "epoch": 2, "rule": "rung",
                              "best": {"val_auc": 0.61, "val_auc_geometric": 0.55}}}
    assert oracle_metrics(cv) == {"val_auc": 0.61, "val_auc_geometric": 0.55,
                                  PRUNED_METRIC: 1.0}
    state = trial_state_from_cv(cv, [])
    assert state["status"] == "COMPLETED" and state["score"] == 0.55
    assert state["metrics"]["metrics"][PRUNED_METRIC]["observations"][0]["value"] == [1.0]
    # Finished folds' means win over the partial fold's metrics.
    cv["mean"] = {"val_auc_geometric": 0.7}
    assert oracle_metrics(cv)["val_auc_geometric"] == 0.7


def test_judge_callback_counts_the_whole_round_across_two_fits_and_keeps_an_ended_fold(
        tmp_path):
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    ticks = iter(range(0, 10_000, 10))  # every look at the clock is 10 s later
    judge = _judge(tmp_path, _Budget(30, remaining_s=1.0), clock=lambda: next(ticks))
    cb = judge.callback(0, 10)
    cb.set_model(model)
    for epoch in (0, 1):  # stage 1 of a two-stage fit (the transfer family)
        cb.on_epoch_begin(epoch)
        model.stop_training = epoch == 1  # early stopping ended stage 1 at its 2nd epoch
        cb.on_epoch_end(epoch, {"val_auc": 0.6})
    # The cost rule would fire at epoch 2 (1 s left), but early stopping already ended the
    # fold in that epoch: it is kept, not stopped.
    assert judge.stop is None
    model.stop_training = False
    cb.on_train_begin()  # stage 2: a second fit with the same callbacks
    cb.on_epoch_begin(2)
    cb.on_epoch_end(2, {"val_auc": 0.7})
    assert cb.values == [0.6, 0.6, 0.7] and judge.stop[2] == 3  # epochs of the round


def test_peers_of_a_hyperband_round_share_both_its_ends(tmp_path):
    from search.racing import budget_of

    assert budget_of({"hyperband": {"epochs": 10, "initial_epoch": 4}}) == (10, 4)
    assert budget_of({"hyperband": {"epochs": 10, "initial_epoch": 0}}) == (10, 0)
    assert budget_of({"hyperband": None}) is None
    for tid, start in (("0000", 4), ("0001", 0)):
        d = tmp_path / f"trial_{tid}"
        d.mkdir()
        (d / "cv.json").write_text(json.dumps(
            {"trial_id": tid, "hyperband": {"epochs": 10, "initial_epoch": start}}))
        (d / "fold0.json").write_text(json.dumps({"history": {"val_auc": [0.9]}}))
    # A fresh 10-epoch round is not compared with a continued 4->10 round.
    peers = pruning.peer_curves(tmp_path, 0, metric="val_auc", direction="max",
                                budget=(10, 0), exclude="x")
    assert len(peers) == 1
