"""How the oracles search: Hyperband sized from the cap, Bayesian that models, over-budget
draws refused without using up the cap (driven oracles, no training)."""

from __future__ import annotations

import keras_tuner as kt
import pytest

from search.tuners.oracle_base import startup_trials as bayesian_initial_points
from search.tuners.oracles import (default_min_epochs, describe_plan, hyperband_plan, make_oracle,
                                   plan_trials, plan_warning)
from spaces import CNNHyperModel


def _oracle(tuner: str, tmp_path, *, max_trials: int, max_epochs: int = 10,
            min_epochs: int | None = None, refusal=None):
    oracle = make_oracle(tuner, objective="val_auc", direction="max", max_trials=max_trials,
                         max_epochs=max_epochs, seed=1, family="cnn", min_epochs=min_epochs)
    hp = kt.HyperParameters()
    CNNHyperModel(input_shape=(16, 16, 1)).declare_hyperparameters(hp)
    oracle.hyperparameters = hp
    oracle._display.verbose = 0  # KerasTuner's per-trial tables
    oracle._set_project_dir(str(tmp_path), "p")
    oracle.refusal = refusal
    return oracle


def _drive(oracle, score, *, fail=()):
    """Runs the oracle to its end: ``score(values)`` is each trial's val_auc."""
    trials = []
    while True:
        trial = oracle.create_trial("tuner0")
        if trial.status == "STOPPED":
            return trials
        assert trial.status == "RUNNING", trial.status
        values = dict(trial.hyperparameters.values)
        if trial.trial_id in fail:
            trial.status = "FAILED"
        else:
            oracle.update_trial(trial.trial_id, {"val_auc": score(values)})
            trial.status = "COMPLETED"
        oracle.end_trial(trial)
        trials.append((trial.trial_id, values))


def test_plan_fits_the_cap_and_reaches_max_epochs():
    assert default_min_epochs(10) == 4 and default_min_epochs(6) == 2 and default_min_epochs(1) == 1
    assert hyperband_plan(10, 4, 10) == [(8, 4), (2, 10)]
    assert hyperband_plan(4, 2, 6) == [(3, 2), (1, 6)]  # the quickstart
    assert hyperband_plan(30, 1, 9) == [(21, 1), (7, 3), (2, 9)]
    for trials in range(3, 60):
        plan = hyperband_plan(trials, 4, 10)
        assert plan_trials(plan) <= trials and plan[-1][1] == 10 and len(plan) == 2
        assert plan[0][0] >= 2 * plan[1][0]
    assert describe_plan([(8, 4), (2, 10)]) == \
        "8 configurations x 4 epochs, best 2 continue to 10 epochs (10 trials)"


def test_a_cap_too_small_to_promote_is_said_and_trains_full_length():
    assert hyperband_plan(2, 4, 10) == [(2, 10)]
    warning = plan_warning(2, 4, 10)
    assert "--max-trials 2" in warning and "at least 3" in warning
    assert plan_warning(3, 4, 10) is None and plan_warning(1, 10, 10) is None


@pytest.mark.parametrize("cap,epochs", [(10, 10), (4, 6), (25, 9)])
def test_default_sized_hyperband_promotes_the_best_to_max_epochs(tmp_path, cap, epochs):
    oracle = _oracle("hyperband", tmp_path, max_trials=cap, max_epochs=epochs)
    trials = _drive(oracle, lambda v: v["learning_rate"] * 0 + v["conv_filters"] / 1000)
    assert len(trials) == cap or len(trials) == plan_trials(hyperband_plan(cap, default_min_epochs(
        epochs), epochs))
    promoted = [(tid, v) for tid, v in trials if v["tuner/round"] > 0]
    assert promoted, "no configuration was promoted"
    assert max(v["tuner/epochs"] for _, v in trials) == epochs
    scores = {tid: v["conv_filters"] for tid, v in trials if v["tuner/round"] == 0}
    first = [v for _, v in promoted if v["tuner/round"] == 1]
    # the promoted configurations are the best of their round, best first
    best_first_round = sorted(scores.values(), reverse=True)[:len(first)]
    assert [scores[v["tuner/trial_id"]] for v in first] == best_first_round


def test_failed_trials_are_not_promoted_and_do_not_stall_the_bracket(tmp_path):
    oracle = _oracle("hyperband", tmp_path, max_trials=10)
    trials = _drive(oracle, lambda v: 0.9, fail={"0001", "0002", "0003"})
    ids = [tid for tid, _ in trials]
    assert len(ids) == 10
    promoted = [v["tuner/trial_id"] for _, v in trials if v["tuner/round"] == 1]
    assert len(promoted) == 2 and not set(promoted) & {"0001", "0002", "0003"}


def test_over_budget_draws_never_become_trials(tmp_path):
    refuse = lambda v: "over budget" if v["conv_filters"] > 16 else None  # noqa: E731
    for tuner in ("random", "bayesian", "hyperband"):
        oracle = _oracle(tuner, tmp_path / tuner, max_trials=6, refusal=refuse)
        trials = _drive(oracle, lambda v: v["conv_blocks"] / 10)
        assert len(trials) == 6, tuner  # N asked, N trained
        assert all(v["conv_filters"] <= 16 for _, v in trials), tuner
        assert oracle.refused_draws > 0  # the defaults (32 filters) among them


def test_bayesian_models_within_ten_trials_and_learns_from_failures(tmp_path):
    assert bayesian_initial_points(10) == 3 and bayesian_initial_points(100) == 10
    oracle = _oracle("bayesian", tmp_path, max_trials=10)
    trials = _drive(oracle, lambda v: 1.0 - abs(v["learning_rate"] - 1e-3), fail={"0001"})
    assert len(trials) == 10
    sources = oracle.proposals
    assert [sources[t] for t in ("0000", "0001", "0002")] == ["random"] * 3
    assert sum(s == "model" for s in sources.values()) >= 5
    # the failed trial is in the model's data, at the worst score seen
    x, y = oracle._vectorize_trials()
    assert len(y) == 10 and y[-1] == pytest.approx(y[:-1].max())  # minimised: max = worst
    # no proposal repeats a configuration already tried
    hashes = [oracle._compute_values_hash(v) for _, v in trials]
    assert len(set(hashes)) == len(hashes)


def test_bayesian_proposals_survive_a_reload(tmp_path):
    oracle = _oracle("bayesian", tmp_path, max_trials=5)
    _drive(oracle, lambda v: 0.5)
    again = _oracle("bayesian", tmp_path, max_trials=7)
    again.reload()
    assert again.proposals == oracle.proposals
    assert again.num_initial_points == oracle.num_initial_points


def test_bayesian_run_saved_without_initial_points_still_proposes(tmp_path):
    # Run folders saved before this change hold num_initial_points = None.
    oracle = _oracle("bayesian", tmp_path, max_trials=8)
    oracle.num_initial_points = None
    trials = _drive(oracle, lambda v: v["conv_blocks"] / 10)
    assert len(trials) == 8 and "model" in oracle.proposals.values()
