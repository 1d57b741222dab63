"""The successive-halving ladder (search.schedule.ladder), its judge (search.schedule.fold_judge),
the cost rule (search.schedule.cost) and how each outcome reaches the tuners
(search.tuners.oracle_base, search.tuners.tpe)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from search_helpers import cv_records, finish_trial, fit_events, tiny_config, toy_oracle

from search.engine import run_search_job
from search.schedule import cost, ladder
from search.schedule.fold_judge import TrialJudge
from search.store.trial_record import family_records


# -- the rule
# ---------------------------------------------------------------------------------------
def test_rungs_climb_the_first_fold_then_its_end():
    def shape(rs):
        return [(r.index, r.fold, r.epoch) for r in rs]

    assert shape(ladder.rungs(30, first=2)) == [(0, 0, 2), (1, 0, 6), (2, 0, None)]
    assert shape(ladder.rungs(30, first=3)) == [(0, 0, 3), (1, 0, 9), (2, 0, None)]
    assert shape(ladder.rungs(10, first=2)) == [(0, 0, 2), (1, 0, None)]
    assert shape(ladder.rungs(3, first=2)) == [(0, 0, None)]  # too short for a rung inside
    assert ladder.rungs(30, first=2)[1].describe() == "fold 1 at epoch 6"
    assert ladder.rungs(30, first=2)[2].describe() == "the end of fold 1"


def test_verdict_promotes_the_top_third_by_rank():
    assert ladder.verdict(0.5, [], "max").promoted  # the first at a rung always goes on
    assert not ladder.verdict(0.8, [0.9], "max").promoted  # the second must beat the first
    v = ladder.verdict(0.85, [0.9, 0.7, 0.6], "max")  # 4 reached: the top 2 go on
    assert (v.promoted, v.rank, v.field, v.keep, v.boundary) == (True, 2, 4, 2, 0.85)
    assert not ladder.verdict(0.69, [0.9, 0.7, 0.6], "max").promoted
    assert ladder.verdict(0.3, [0.4, 0.5], "min").promoted  # a loss: lower is better
    assert not ladder.verdict(math.nan, [0.1, 0.2, 0.3], "max").promoted  # NaN ranks last
    assert ladder.verdict(0.9, [0.9, 0.9, 0.9], "max").promoted  # ties share the best rank


def test_on_constructed_arrivals_exactly_the_top_third_so_far_goes_on():
    rng = np.random.default_rng(0)
    for _ in range(50):
        values = list(rng.uniform(0.5, 1.0, size=int(rng.integers(1, 30))))
        for i, value in enumerate(values):
            seen = values[:i + 1]
            top = sorted(seen, reverse=True)[:max(1, math.ceil(len(seen) / 3))]
            assert ladder.verdict(value, values[:i], "max").promoted == (value >= top[-1])


def _peer(family_dir: Path, trial_id: str, values: dict[int, float], *, bracket: int = 0,
          hyperband: dict | None = None, status: str = "COMPLETED") -> None:
    d = family_dir / f"trial_{trial_id}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "cv.json").write_text(json.dumps({
        "trial_id": trial_id, "status": status, "hyperband": hyperband,
        "ladder": {"bracket": bracket, "rungs": [
            {"rung": k, "value": v, "seconds": 10.0 + k} for k, v in values.items()]}}))


def _judge(family_dir: Path, trial_id: str, **kw) -> tuple[TrialJudge, list[dict]]:
    seen: list[dict] = []
    judge = TrialJudge(family_dir=family_dir, trial_id=trial_id, objective="val_auc_geometric",
                       direction="max", budget_epochs=kw.pop("budget", None),
                       round_epochs=kw.pop("round_epochs", 30), first_rung=kw.pop("first", 2),
                       on_rung=seen.append, **kw)
    return judge, seen


def test_the_judge_ranks_against_peers_of_the_same_rung_round_and_bracket(tmp_path):
    for i, v in enumerate((0.95, 0.93, 0.90, 0.88, 0.86)):
        _peer(tmp_path, f"000{i}", {0: v})
    _peer(tmp_path, "0010", {0: 0.99}, hyperband={"epochs": 10, "initial_epoch": 0})
    _peer(tmp_path, "0011", {0: 0.99}, bracket=1)
    judge, seen = _judge(tmp_path, "0009")
    rung0 = judge.rungs[0]
    # 6 reached rung 0 (the other round and bracket do not count): the top 2 go on.
    reason = judge.judge_rung(rung0, 0.92)
    assert reason.startswith("pruned at fold 1 at epoch 2 (ladder rung 1): val_auc_geometric "
                             "0.9200 ranks 3 of 6; only the top 2 go on (boundary 0.9300)")
    assert seen[-1]["promoted"] is False and seen[-1]["rank"] == 3 and seen[-1]["field"] == 6
    judge, seen = _judge(tmp_path, "0009")
    assert judge.judge_rung(rung0, 0.94) is None and judge.judged and 0 in judge.passed
    # The end of the first fold is a rung too; the other folds are not.
    assert judge.fold_end_rung(0).index == 2 and judge.fold_end_rung(1) is None
    assert judge.at_fold_end(1, 0.1) is None


def test_a_protected_slow_learner_survives_in_a_later_bracket(tmp_path):
    """A slow starter (chance-level at the first rung, the best at the end of its fold) is
    stopped at rung 1 in bracket 0, and goes on in bracket 1, which is first judged later."""
    for i, (early, mid, end) in enumerate(((0.90, 0.92, 0.93), (0.88, 0.91, 0.92),
                                           (0.86, 0.90, 0.91))):
        _peer(tmp_path, f"000{i * 2}", {0: early, 1: mid, 2: end}, bracket=0)
        _peer(tmp_path, f"000{i * 2 + 1}", {0: early, 1: mid, 2: end}, bracket=1)
    slow = (0.55, 0.93, 0.96)
    judge, _ = _judge(tmp_path, "0008", brackets=2)  # 8 mod 2: bracket 0
    assert judge.bracket == 0
    assert judge.judge_rung(judge.rungs[0], slow[0]) is not None
    judge, seen = _judge(tmp_path, "0009", brackets=2)  # bracket 1: rung 0 is only recorded
    assert judge.bracket == 1
    assert judge.judge_rung(judge.rungs[0], slow[0]) is None and not seen[-1]["judged"]
    assert judge.judge_rung(judge.rungs[1], slow[1]) is None  # judged from rung 1: it caught up
    assert seen[-1]["judged"] and seen[-1]["rank"] == 1
    assert judge.at_fold_end(0, slow[2]) is None  # the best at the end of its fold


def test_a_rung_a_trial_passed_before_is_not_judged_again_after_a_resume(tmp_path):
    for i, v in enumerate((0.95, 0.93, 0.90)):
        _peer(tmp_path, f"000{i}", {0: v})
    judge, seen = _judge(tmp_path, "0005", passed={0})
    assert judge.judge_rung(judge.rungs[0], 0.5) is None and seen[-1]["promoted"]


# -- suspension -------------------------------------------------------------------------------
def _standing(tid: str, rungs: dict[int, float], suspended: bool = False, bracket: int = 0):
    return ladder.Standing(tid, bracket, rungs, suspended)


def test_a_suspended_configuration_waits_for_a_field_of_eta_and_then_goes_on_if_on_top():
    alone = [_standing("0000", {0: 0.9}, True), _standing("0001", {0: 0.8}, True)]
    assert ladder.pick_promotion(alone, "max") is None  # two at the rung: too few to rank
    third = alone + [_standing("0002", {0: 0.7})]
    assert ladder.pick_promotion(third, "max") == "0000"  # top third of three
    beaten = [_standing("0000", {0: 0.6}, True), _standing("0001", {0: 0.8}),
              _standing("0002", {0: 0.7})]
    assert ladder.pick_promotion(beaten, "max") is None  # last of three: it keeps waiting
    # The highest rung first, then the best value; another bracket is another field.
    many = [_standing("0000", {0: 0.9, 1: 0.91}, True), _standing("0001", {0: 0.95}, True),
            _standing("0002", {0: 0.5, 1: 0.85}), _standing("0003", {0: 0.4, 1: 0.8}),
            _standing("0004", {0: 0.3}), _standing("0005", {0: 0.99}, True, bracket=1)]
    assert ladder.pick_promotion(many, "max") == "0000"
    assert ladder.pick_promotion(many[1:], "max") == "0001"
    assert ladder.pick_promotion([_standing("0000", {0: 0.2}, True),
                                  _standing("0001", {0: 0.3}), _standing("0002", {0: 0.4})],
                                 "min") == "0000"  # a loss: lower is better


def test_at_the_search_end_the_leaders_of_small_rungs_are_finished():
    alone = [_standing("0000", {0: 0.9}, True), _standing("0001", {0: 0.8}, True)]
    assert ladder.pick_promotion(alone, "max", finishing=True) == "0000"
    assert ladder.pick_promotion(alone[1:], "max", finishing=True) == "0001"
    assert ladder.pick_promotion([alone[1], _standing("0000", {0: 0.9})], "max",
                                 finishing=True) is None  # second of two: not a leader
    assert ladder.pick_promotion([_standing("0000", {0: math.nan}, True)], "max",
                                 finishing=True) is None


def test_the_judge_suspends_below_a_field_of_eta_and_judges_from_there(tmp_path):
    judge, seen = _judge(tmp_path, "0000", suspend=True)
    reason = judge.judge_rung(judge.rungs[0], 0.9)
    assert reason.startswith("suspended at fold 1 at epoch 2 (ladder rung 1): "
                             "val_auc_geometric 0.9000 ranks 1 of 1")
    assert seen[-1]["suspended"] and not seen[-1]["promoted"] and judge.suspended == seen[-1]
    _peer(tmp_path, "0000", {0: 0.9})
    _peer(tmp_path, "0001", {0: 0.8})
    judge, seen = _judge(tmp_path, "0002", suspend=True)  # a field of three: judged at once
    assert judge.judge_rung(judge.rungs[0], 0.7).startswith("pruned at")
    assert judge.suspended is None and "suspended" not in seen[-1]
    judge, _ = _judge(tmp_path, "0003", suspend=True)
    assert judge.judge_rung(judge.rungs[0], 0.95) is None and judge.suspended is None
    # A Hyperband round (suspend off) and a rung passed before are never suspended.
    judge, _ = _judge(tmp_path / "other", "0000", suspend=False)
    assert judge.judge_rung(judge.rungs[0], 0.9) is None
    judge, _ = _judge(tmp_path / "other", "0000", suspend=True, passed={0})
    assert judge.judge_rung(judge.rungs[0], 0.9) is None


def test_the_oracle_resumes_a_suspended_trial_under_its_id_and_keeps_it_out_of_the_best(
        tmp_path):
    from search.tuners.oracle_base import SUSPENDED_METRIC, is_suspended

    oracle = toy_oracle("random", tmp_path, max_trials=3)
    first = finish_trial(oracle, {"val_auc": 0.9, "cxr_rung0": 0.9, SUSPENDED_METRIC: 1.0})
    finish_trial(oracle, {"val_auc": 0.8, "cxr_rung0": 0.8, SUSPENDED_METRIC: 1.0})
    assert is_suspended(oracle.trials[first.trial_id]) and oracle.get_best_trials() == []
    third = oracle.create_trial("tuner0")  # two at the rung: a new configuration is drawn
    assert third.trial_id not in (first.trial_id,) and len(oracle.trials) == 3
    oracle.update_trial(third.trial_id, {"val_auc": 0.7, "cxr_rung0": 0.7, "cxr_pruned": 1.0})
    third.status = "COMPLETED"
    oracle.end_trial(third)
    again = oracle.create_trial("tuner0")  # the leader of three goes on, under its own id
    assert again.trial_id == first.trial_id and again.status == "RUNNING"
    assert not again.metrics.exists("val_auc")  # so KerasTuner takes its final report
    assert oracle.resumed == [first.trial_id]
    oracle.update_trial(again.trial_id, {"val_auc": 0.93, "cxr_rung0": 0.9})
    again.status = "COMPLETED"
    oracle.end_trial(again)
    assert [t.trial_id for t in oracle.get_best_trials(3)] == [first.trial_id]
    assert oracle.create_trial("tuner0").status == "STOPPED"  # 0001 is last of three


def test_the_oracle_does_not_resume_a_trial_the_reserve_holds(tmp_path):
    from search.tuners.oracle_base import SUSPENDED_METRIC

    oracle = toy_oracle("random", tmp_path, max_trials=8)
    first = finish_trial(oracle, {"val_auc": 0.9, "cxr_rung0": 0.9, SUSPENDED_METRIC: 1.0})
    second = finish_trial(oracle, {"val_auc": 0.8, "cxr_rung0": 0.8, SUSPENDED_METRIC: 1.0})
    finish_trial(oracle, {"val_auc": 0.7, "cxr_rung0": 0.7, "cxr_pruned": 1.0})
    oracle.held = lambda trial_id: trial_id == first.trial_id  # the top of three, held
    fourth = oracle.create_trial("tuner0")
    assert fourth.trial_id not in (first.trial_id, second.trial_id)  # a new draw instead
    oracle.update_trial(fourth.trial_id, {"val_auc": 0.6, "cxr_rung0": 0.6, "cxr_pruned": 1.0})
    fourth.status = "COMPLETED"
    oracle.end_trial(fourth)
    assert oracle.create_trial("tuner0").trial_id == second.trial_id  # top 2 of 4, not held


def test_a_resumed_trial_cut_by_a_stop_is_queued_again_after_a_reload(tmp_path):
    from search.tuners.oracle_base import SUSPENDED_METRIC

    oracle = toy_oracle("random", tmp_path, max_trials=1)
    first = finish_trial(oracle, {"val_auc": 0.9, "cxr_rung0": 0.9, SUSPENDED_METRIC: 1.0})
    assert oracle.create_trial("tuner0").trial_id == first.trial_id  # the cap: finish it
    reloaded = toy_oracle("random", tmp_path, max_trials=1)
    reloaded.reload()
    assert reloaded.resumed == [first.trial_id]
    assert reloaded.create_trial("tuner0").trial_id == first.trial_id


# -- cost and the search end
# -------------------------------------------------------------------------
class _Budget:
    def __init__(self, minutes, remaining_s):
        self.minutes, self.remaining_s = minutes, remaining_s


def test_share_rule_censors_only_unjudged_later_configurations(tmp_path):
    now = [0.0]
    kw = dict(time_budget=_Budget(10, 300.0), max_share=0.25, clock=lambda: now[0])
    judge, _ = _judge(tmp_path, "0001", has_peers=True, **kw)
    now[0] = 100.0  # 100 s < 25% of 600 s
    assert judge.cost_reason(0, 1) is None
    now[0] = 200.0
    assert "by cost (censored, not scored)" in judge.cost_reason(0, 1)
    first, _ = _judge(tmp_path, "0000", has_peers=False, **kw)
    assert first.cost_reason(0, 1) is None  # the first configuration is exempt
    judged, _ = _judge(tmp_path, "0002", has_peers=True, judged=True, **kw)
    assert judged.cost_reason(0, 1) is None  # a rung compared it already
    off, _ = _judge(tmp_path, "0003", has_peers=True, first=None, **kw)
    assert off.cost_reason(0, 1) is None  # --no-ladder: nothing would ever judge it
    spent, _ = _judge(tmp_path, "0004", has_peers=True, time_budget=_Budget(10, -1.0),
                      max_share=0.25, clock=lambda: now[0])
    assert spent.cost_reason(0, 1) is None  # the budget cut applies: resumable


def test_search_end_reason_and_seconds_to_the_first_rung(tmp_path):
    for i in range(3):
        _peer(tmp_path, f"000{i}", {0: 0.9})
    records = family_records(tmp_path)
    assert ladder.seconds_to_first_rung(records) == 10.0
    assert ladder.seconds_to_first_rung(records, budget=(10, 0)) is None
    _peer(tmp_path, "0003", {0: 0.9})
    slow = json.loads((tmp_path / "trial_0003" / "cv.json").read_text())
    slow["ladder"]["rungs"][0]["seconds"] = 95.0  # a dear draw
    (tmp_path / "trial_0003" / "cv.json").write_text(json.dumps(slow))
    assert ladder.slowest_first_rung(family_records(tmp_path)) == 95.0
    assert ladder.slowest_first_rung([]) is None
    assert cost.search_end_reason(left_s=None, first_rung_s=10.0) is None
    assert cost.search_end_reason(left_s=60.0, first_rung_s=None) is None
    assert cost.search_end_reason(left_s=60.0, first_rung_s=10.0) is None
    why = cost.search_end_reason(left_s=5.0, first_rung_s=10.0)
    assert "search ended" in why and "--time-budget" in why


def test_seconds_to_finish_is_the_leaders_own_pace_times_the_epochs_left():
    # Suspended at epoch 6 of fold 1 after 60 s: 10 s an epoch, 3 x 30 - 6 epochs to go.
    at_epoch = {"duration_s": 60.0, "folds": [],
                "ladder": {"rungs": [{"rung": 0, "fold": 0, "epoch": 2, "value": 0.9},
                                     {"rung": 1, "fold": 0, "epoch": 6, "value": 0.95}]}}
    assert ladder.seconds_to_finish(at_epoch, 3, 30) == pytest.approx(840.0)
    # Suspended at the end of fold 1, early-stopped at epoch 20 after 400 s: two folds to go.
    at_end = {"duration_s": 400.0, "folds": [{"epochs_trained": 20, "initial_epoch": 0}],
              "ladder": {"rungs": [{"rung": 2, "fold": 0, "epoch": None, "value": 0.98}]}}
    assert ladder.seconds_to_finish(at_end, 3, 30) == pytest.approx(1200.0)
    assert ladder.seconds_to_finish({"duration_s": 5.0}, 3, 30) is None  # no epoch yet


def test_the_finish_reserve_starts_when_one_more_draw_would_leave_too_little():
    kw = dict(first_rung_s=60.0, trial_id="0000")
    assert cost.reserve_reason(left_s=None, finish_s=800.0, **kw) is None  # no budget
    assert cost.reserve_reason(left_s=1200.0, finish_s=800.0, **kw) is None  # room to draw
    assert cost.reserve_reason(left_s=600.0, finish_s=800.0, **kw) is None  # cannot finish
    why = cost.reserve_reason(left_s=900.0, finish_s=800.0, **kw)
    assert why.startswith("finishing trial 0000 now") and "13.3 min" in why


def test_the_order_of_promotion_puts_the_highest_rung_then_the_best_first():
    field = [_standing("0000", {0: 0.9, 1: 0.95}, True), _standing("0001", {0: 0.97}, True),
             _standing("0002", {0: 0.5}), _standing("0003", {0: 0.99}, True)]
    ranked_out = _standing("0004", {0: 0.6, 1: 0.5}, True)  # last of two at rung 1
    assert ladder.finish_order(field + [ranked_out], "max") == [
        "0000", "0004", "0003", "0001"]  # the reserve's order: every waiting one, by rung
    assert ladder.promotion_order(field, "max", finishing=True) == ["0000", "0003", "0001"]
    assert ladder.promotion_order(field, "max") == ["0003", "0001"]  # rung 1: 0000 alone
    assert ladder.pick_promotion(field, "max") == "0003"


def test_a_configuration_that_passes_a_rung_waits_when_going_on_would_eat_the_reserve():
    kw = dict(finish_s=800.0, trial_id="0000")
    assert cost.hold_reason(left_s=None, continue_s=500.0, **kw) is None  # no budget
    assert cost.hold_reason(left_s=2000.0, continue_s=500.0, **kw) is None  # room for both
    assert cost.hold_reason(left_s=700.0, continue_s=10.0, **kw) is None  # leader cannot finish
    why = cost.hold_reason(left_s=1200.0, continue_s=500.0, **kw)
    assert why.startswith("waits here") and "trial 0000" in why


def test_the_judge_suspends_a_passing_trial_the_reserve_holds(tmp_path):
    for i in range(3):
        _peer(tmp_path, f"000{i}", {0: 0.5})
    now = [0.0]
    asked = []

    def hold(trial_id, rung, value, continue_s, finish_s):
        asked.append((trial_id, rung, value, continue_s, finish_s))
        return "waits here: the leader's time" if value < 0.95 else None

    judge, seen = _judge(tmp_path, "0003", suspend=True, folds=3, hold=hold,
                         round_epochs=30, clock=lambda: now[0])
    judge.session_epochs, now[0] = 2, 20.0  # 10 s an epoch
    reason = judge.judge_rung(judge.rungs[0], 0.9)  # top of four at epoch 2: passes, is held
    assert asked == [("0003", 0, 0.9, 40.0, 880.0)]  # to epoch 6; 28 + 2 x 30 epochs left
    assert reason.startswith("suspended at fold 1 at epoch 2") and "the leader's time" in reason
    assert seen[-1]["held"] and seen[-1]["suspended"] and not seen[-1]["promoted"]
    assert judge.suspended is seen[-1]
    judge, seen = _judge(tmp_path, "0004", suspend=True, folds=3, hold=hold,
                         clock=lambda: now[0])
    judge.session_epochs = 2
    assert judge.judge_rung(judge.rungs[0], 0.97) is None and seen[-1]["promoted"]
    judge, _ = _judge(tmp_path, "0005", suspend=False, folds=3, hold=hold)
    judge.session_epochs = 2
    assert judge.judge_rung(judge.rungs[0], 0.9) is None  # a Hyperband round: never held


def test_the_reserve_holds_for_the_leader_and_never_holds_the_leader(tmp_path):
    import types

    from search.tuners.cv_tuner import CVTuner

    # 0000 waits at the end of fold 1 (its pace: 10 s an epoch, 60 epochs left: 600 s).
    _peer(tmp_path, "0000", {0: 0.93, 1: 0.95, 2: 0.98}, status="SUSPENDED")
    leader = json.loads((tmp_path / "trial_0000" / "cv.json").read_text())
    leader.update(duration_s=300.0, folds=[{"epochs_trained": 30, "initial_epoch": 0}])
    leader["ladder"]["rungs"][-1].update(fold=0, epoch=None)
    (tmp_path / "trial_0000" / "cv.json").write_text(json.dumps(leader))
    for i, v in enumerate((0.6, 0.7), 1):
        _peer(tmp_path, f"000{i}", {0: v}, status="PRUNED")
    tuner = types.SimpleNamespace(
        budget=_Budget(30, 1000.0), family_dir=tmp_path, max_epochs=30, ladder_brackets=1,
        data=types.SimpleNamespace(folds=[None] * 3), read_cv=lambda tid: None,
        oracle=types.SimpleNamespace(objective=types.SimpleNamespace(direction="max")))
    tuner._finishable_leader = types.MethodType(CVTuner._finishable_leader, tuner)
    hold = types.MethodType(CVTuner._hold, tuner)
    why = hold("0003", 0, 0.99, 500.0, 2000.0)  # 1000 - 500 < 1.1 x 600: it waits
    assert why.startswith("waits here") and "trial 0000" in why
    assert hold("0003", 0, 0.99, 100.0, 2000.0) is None  # 900 s left after it: room for both
    assert hold("0003", 2, 0.99, 500.0, 900.0) is None  # it leads the top rung: it goes on
    # It leads the top rung but cannot finish in time: the next best there can, so it waits.
    assert hold("0003", 2, 0.99, 500.0, 1500.0).startswith("waits here")
    # The oracle asks the same of a suspended trial before resuming it (its pace: 30 s an
    # epoch; 24 epochs to the end of fold 1 leave 280 s, less than 1.1 x 600 s).
    _peer(tmp_path, "0005", {0: 0.97, 1: 0.99}, status="SUSPENDED")
    waiting = json.loads((tmp_path / "trial_0005" / "cv.json").read_text())
    waiting.update(duration_s=180.0, folds=[])
    for e, epoch in zip(waiting["ladder"]["rungs"], (2, 6)):
        e.update(fold=0, epoch=epoch)
    (tmp_path / "trial_0005" / "cv.json").write_text(json.dumps(waiting))
    tuner.first_rung = 2
    tuner.read_cv = lambda tid: (json.loads(f.read_text()) if (
        f := tmp_path / f"trial_{tid}" / "cv.json").exists() else None)
    tuner._hold = hold
    assert types.MethodType(CVTuner._held, tuner)("0005") is True
    tuner.budget = _Budget(30, 3000.0)
    assert types.MethodType(CVTuner._held, tuner)("0005") is False  # room for both
    tuner.budget = _Budget(30, 1000.0)
    tuner.budget = _Budget(30, 500.0)
    assert hold("0003", 0, 0.99, 400.0, 2000.0) is None  # 0000 cannot finish: nothing to keep
    tuner.budget = _Budget(30, 1000.0)
    _peer(tmp_path, "0004", {0: 0.9})  # COMPLETED: one has finished, the reserve is off
    assert hold("0003", 0, 0.99, 500.0, 2000.0) is None
    held = types.MethodType(CVTuner._held, tuner)
    assert held("0005") is False  # its next stretch (24 epochs x 30 s = 720 s) fits in 1000 s
    # A stretch the budget would cut is not started: its epochs would be lost at the cut.
    tuner.budget = _Budget(30, 700.0)
    assert held("0005") is True


def test_a_budgeted_search_keeps_time_to_finish_its_leader(
        tmp_path, synthetic_root, monkeypatch):
    # Pretend the leader needs all but a minute of the budget: the search finishes it as soon
    # as it is suspended instead of drawing, then draws again once one has finished.
    monkeypatch.setattr(ladder, "seconds_to_finish",
                        lambda cv, folds, max_epochs: 3540.0 if cv.get("folds") is not None
                        else None)
    cfg = tiny_config(tmp_path, synthetic_root, max_trials=2, max_epochs=3, patience=3,
                      ladder=True, first_rung=1, time_budget_min=60.0)
    fam = run_search_job(cfg)["families"]["ann"]
    family_dir = Path(cfg.run_dir) / "ann"
    starts = [(e["trial_id"], e["fold"]) for e in fit_events(family_dir)
              if e["event"] == "start"]
    assert starts[:2] == [("0000", 0), ("0000", 0)]  # suspended alone, then finished at once
    assert ("0001", 0) in starts[2:]  # one finished: the search draws again
    assert cv_records(family_dir)["trial_0000"]["status"] == "COMPLETED"
    assert fam["trials_completed"] >= 1
    log = (Path(cfg.run_dir) / "search.log").read_text()
    assert "finishing trial 0000 now" in log and "no configuration has finished yet" in log


# -- outcomes reaching the tuners -----------------------------------------------------------------
def test_a_cost_stop_reaches_the_oracles_as_censored(tmp_path):
    from search.store.fold_records import oracle_metrics
    from search.tuners.oracles import CENSORED_METRIC, PRUNED_METRIC
    from search.tuners.tpe import space_map, study_from_trials

    cv = {"status": "PRUNED", "censored": True, "mean": {},
          "stopped_in_fold": {"best": {"val_auc": 0.6}}}
    metrics = oracle_metrics(cv)
    assert metrics[CENSORED_METRIC] == 1.0 and PRUNED_METRIC not in metrics
    for tuner in ("bayesian", "tpe"):
        oracle = toy_oracle(tuner, tmp_path / tuner)
        for i, extra in enumerate(({}, {CENSORED_METRIC: 1.0}, {})):
            finish_trial(oracle, {"val_auc": (0.7, 0.99, 0.8)[i], **extra})
        # Never best, whatever its partial score.
        assert oracle.get_best_trials(1)[0].trial_id == "0002"
        if tuner == "bayesian":
            x, y = oracle._vectorize_trials()
            assert len(y) == 2 and -0.99 not in list(y)  # the censored score is not learnt
        else:
            study = study_from_trials(list(oracle.trials.values()),
                                      space_map(oracle.hyperparameters), "max")
            assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL", "COMPLETE"]


def test_tpe_reads_every_rung_as_an_intermediate_value(tmp_path):
    from search.tuners.oracles import PRUNED_METRIC
    from search.tuners.tpe import space_map, study_from_trials

    oracle = toy_oracle("tpe", tmp_path)
    for metrics in ({"val_auc": 0.9, "cxr_rung0": 0.8, "cxr_rung1": 0.85},
                    {"val_auc": 0.7, "cxr_rung0": 0.75, "cxr_rung1": 0.7, PRUNED_METRIC: 1.0},
                    {"val_auc": 0.6, "cxr_rung0": 0.6, PRUNED_METRIC: 1.0}):
        finish_trial(oracle, metrics)
    study = study_from_trials(list(oracle.trials.values()), space_map(oracle.hyperparameters),
                              "max")
    got = [(t.state.name, dict(t.intermediate_values)) for t in study.trials]
    assert got == [("COMPLETE", {0: 0.8, 1: 0.85}), ("PRUNED", {0: 0.75, 1: 0.7}),
                   ("PRUNED", {0: 0.6})]


# -- end to end (tiny data)
# -------------------------------------------------------------------------
def _scripted_rungs(monkeypatch, script: dict[tuple[str, int], float]) -> None:
    """Replaces the value a trial measures at a rung by ``script[(trial id, rung)]``."""
    real = TrialJudge.judge_rung

    def scripted(self, rung, value):
        return real(self, rung, script.get((self.trial_id, rung.index), value))

    monkeypatch.setattr(TrialJudge, "judge_rung", scripted)


def test_the_ladder_suspends_lone_configurations_and_resumes_the_leader_from_its_rung(
        tmp_path, synthetic_root):
    import h5py
    import pytest as _pytest
    from results.leaderboard import build_leaderboard
    from search.fit import fold_fit

    mp = _pytest.MonkeyPatch()
    # Rung 0 is epoch 1 of fold 0, rung 1 its end. The first two configurations are alone
    # there (suspended); the third makes a field of three, ranks last and is pruned; the
    # search then has its three trials, so it finishes the rung's leader, 0000, from epoch 1.
    _scripted_rungs(mp, {("0000", 0): 0.9, ("0001", 0): 0.8, ("0002", 0): 0.7})
    try:
        cfg = tiny_config(tmp_path, synthetic_root, max_trials=3, max_epochs=3, patience=3,
                          ladder=True, first_rung=1)
        fam = run_search_job(cfg)["families"]["ann"]
    finally:
        mp.undo()
    assert (fam["trials_completed"], fam["trials_pruned"], fam["trials_suspended"],
            fam["trials_failed"]) == (1, 1, 1, 0)
    assert fam["best_trial_id"] == "0000"
    family_dir = Path(cfg.run_dir) / "ann"
    records = cv_records(family_dir)
    assert [records[f"trial_000{i}"]["status"] for i in range(3)] == [
        "COMPLETED", "SUSPENDED", "PRUNED"]
    rungs = {e["rung"]: e for e in records["trial_0000"]["ladder"]["rungs"]}
    assert rungs[0]["suspended"] and rungs[0]["resumed"] and rungs[0]["promoted"]
    assert rungs[0]["field"] == 1  # it was alone when it reached the rung
    assert rungs[1]["suspended"] and rungs[1]["resumed"]  # alone at its fold's end too
    fold0 = json.loads((family_dir / "trial_0000" / "fold0.json").read_text())
    # Continued from the rung, not retrained: one epoch before the suspension, two after.
    assert fold0["resumed_at_epoch"] == 1 and fold0["epochs_trained"] == 3
    assert all(len(v) == 3 for v in fold0["history"].values())
    assert not fold_fit.suspended_fold_weights(family_dir / "trial_0000", 0).exists()
    waiting = records["trial_0001"]
    assert waiting["reason"].startswith("suspended at fold 1 at epoch 1 (ladder rung 1)")
    assert fold_fit.load_suspended_fold(family_dir / "trial_0001", 0)["epochs_trained"] == 1
    with h5py.File(fold_fit.suspended_fold_weights(family_dir / "trial_0001", 0)) as h5:
        # The optimizer's state at the rung is kept (its step count after one epoch), so the
        # fold continues where it stopped rather than with a fresh optimizer.
        assert int(h5["optimizer/vars/0"][()]) > 0
    assert records["trial_0002"]["reason"].startswith("pruned at fold 1 at epoch 1")
    starts = [e for e in fit_events(family_dir) if e["event"] == "start"]
    assert [(e["trial_id"], e["fold"]) for e in starts][:4] == [
        ("0000", 0), ("0001", 0), ("0002", 0), ("0000", 0)]
    rows = build_leaderboard(cfg.run_dir, "ann")
    assert [(r["trial_id"], r["rank"], r["status"]) for r in rows] == [
        ("0000", 1, "COMPLETED"), ("0001", None, "SUSPENDED"), ("0002", None, "PRUNED")]
    log = (Path(cfg.run_dir) / "search.log").read_text()
    assert "1 suspended at a ladder rung" in log and "SUSPENDED (suspended at" in log
    events = fit_events(family_dir)
    run_search_job(cfg)  # 0001 ranks 2 of 3 at its rung: nothing is promoted or trained
    assert fit_events(family_dir) == events


def test_a_trial_the_budget_cuts_after_its_resume_stays_resumable(
        tmp_path, synthetic_root, monkeypatch):
    import search.engine as engine
    from search.fit import fold_fit
    from search.schedule.budget import TimeBudget

    family_dir = tmp_path / "run" / "ann"

    def continued() -> bool:
        starts = [e for e in fit_events(family_dir) if e["event"] == "start"
                  and e["trial_id"] == "0001"] if (family_dir / "fits.jsonl").exists() else []
        return len(starts) >= 2

    # Two configurations, alone at rung 0: both wait; with the trial cap reached the leader
    # (0001) is resumed, and the budget is spent the moment its continued fit starts.
    clock = lambda: 1e9 if continued() else 0.0  # noqa: E731
    monkeypatch.setattr(engine, "TimeBudget", lambda minutes: TimeBudget(minutes, clock=clock))
    _scripted_rungs(monkeypatch, {("0000", 0): 0.7, ("0001", 0): 0.9})
    cfg = tiny_config(tmp_path, synthetic_root, max_trials=2, max_epochs=4, patience=4,
                      ladder=True, first_rung=1, time_budget_min=600.0)
    assert run_search_job(cfg)["status"] == "budget_exhausted"
    rec = cv_records(family_dir)["trial_0001"]
    assert rec["status"] == "RUNNING" and rec["ladder"]["rungs"][0]["resumed"]
    # The cut continuation is discarded; the state at the rung is still there to go on from.
    assert fold_fit.load_suspended_fold(family_dir / "trial_0001", 0)["epochs_trained"] == 1
    monkeypatch.setattr(engine, "TimeBudget", TimeBudget)
    cfg.time_budget_min = None
    assert run_search_job(cfg)["status"] == "completed"
    records = cv_records(family_dir)
    assert records["trial_0001"]["status"] == "COMPLETED"
    assert records["trial_0000"]["status"] == "SUSPENDED"
    fold0 = json.loads((family_dir / "trial_0001" / "fold0.json").read_text())
    assert fold0["resumed_at_epoch"] == 1


def test_a_configuration_over_its_share_is_censored_and_the_search_goes_on(
        tmp_path, synthetic_root, monkeypatch):
    # Every look at the judges' clock is 1000 s later: a share of 1% of 60 min is spent at
    # once, so every unjudged configuration after the first stops by cost at its first epoch.
    import search.tuners.cv_tuner as cvt
    from search.tuners.oracles import CENSORED_METRIC

    ticks = {"t": 0.0}

    def clock():
        ticks["t"] += 1000.0
        return ticks["t"]

    real_judge = cvt.TrialJudge
    monkeypatch.setattr(cvt, "TrialJudge", lambda **kw: real_judge(clock=clock, **kw))
    cfg = tiny_config(tmp_path, synthetic_root, max_trials=3, max_epochs=3, patience=3,
                      ladder=True, first_rung=2, time_budget_min=60.0, max_trial_share=0.01)
    fam = run_search_job(cfg)["families"]["ann"]
    records = cv_records(Path(cfg.run_dir) / "ann")
    assert records["trial_0000"]["status"] == "COMPLETED"
    for tid in ("trial_0001", "trial_0002"):
        rec = records[tid]
        assert rec["status"] == "PRUNED" and rec["censored"] and rec["stopped_in_fold"][
            "rule"] == "cost"
    assert fam["best_trial_id"] == "0000"
    oracle = json.loads((Path(cfg.run_dir) / "ann" / "trial_0001" / "trial.json").read_text())
    assert CENSORED_METRIC in oracle["metrics"]["metrics"]
    log = (Path(cfg.run_dir) / "search.log").read_text()
    assert "2 stopped for cost (censored)" in log


def test_the_search_ends_when_a_new_configuration_cannot_reach_a_rung(
        tmp_path, synthetic_root, monkeypatch):
    # Once a configuration reached its first rung, pretend that took 10^6 s: no new
    # configuration fits in the budget left, so the search ends instead of drawing, resumably.
    monkeypatch.setattr(ladder, "seconds_to_first_rung",
                        lambda records, budget=None: 1e6 if records else None)
    cfg = tiny_config(tmp_path, synthetic_root, max_trials=2, max_epochs=3, patience=3,
                      ladder=True, first_rung=1, time_budget_min=60.0)
    assert run_search_job(cfg)["status"] == "budget_exhausted"
    family_dir = Path(cfg.run_dir) / "ann"
    assert {e["trial_id"] for e in fit_events(family_dir)} == {"0000"}
    log = (Path(cfg.run_dir) / "search.log").read_text()
    assert "search ended with" in log and "first ladder rung" in log
    cfg.time_budget_min = None
    assert run_search_job(cfg)["status"] == "completed"
    assert {e["trial_id"] for e in fit_events(family_dir)} == {"0000", "0001"}


def test_a_two_stage_fit_is_first_judged_at_the_end_of_its_first_fold(tmp_path):
    judge, _ = _judge(tmp_path, "0001", in_fold=False)
    assert [(r.index, r.epoch) for r in judge.rungs] == [(2, None)]
    assert judge.in_fold_rungs(0) == {} and judge.fold_end_rung(0).index == 2


def test_the_ladder_is_described_before_a_search_starts():
    assert ladder.describe(ladder.rungs(30, first=2)) == (
        "epochs 2 and 6 of fold 1 and its end; the top third at each rung goes on to the "
        "other folds")
    assert ladder.describe(ladder.rungs(3, first=2), brackets=2) == (
        "the end of fold 1; the top third at each rung goes on to the other folds (2 brackets: "
        "bracket b is first judged at rung b + 1)")


def test_the_end_of_search_summary_counts_every_trial(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from search.engine import _done_text

    statuses = ["COMPLETED", "PRUNED", "PRUNED", "SUSPENDED", "RUNNING"]
    for i, status in enumerate(statuses):
        tdir = tmp_path / "cnn" / f"trial_{i:04d}"
        tdir.mkdir(parents=True)
        (tdir / "cv.json").write_text(json.dumps({"status": status}))
    text = _done_text(tmp_path, SimpleNamespace(families=["cnn"]))
    # 5 trials: 1 + 2 + 1 + 1, the one the budget cut after a resume included.
    assert text.startswith("cnn: 5 trial(s): 1 completed, 2 pruned by the ladder, "
                           "1 suspended at a ladder rung")
    assert "1 cut mid-fold" in text
