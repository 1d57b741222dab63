"""The first trial of every search is the space's defaults (the notes' basic model)."""

from __future__ import annotations

import keras_tuner as kt
import pytest

from search.tuners.oracles import default_values, make_oracle
from spaces import CNNHyperModel


def _declared() -> kt.HyperParameters:
    hp = kt.HyperParameters()
    CNNHyperModel(input_shape=(16, 16, 1)).declare_hyperparameters(hp)
    return hp


@pytest.mark.parametrize("tuner", ["hyperband", "random", "bayesian"])
def test_first_trial_is_the_basic_model_then_random(tuner, tmp_path):
    oracle = make_oracle(tuner, objective="val_auc", direction="max", max_trials=5, max_epochs=4,
                         seed=1, family="cnn")
    oracle.hyperparameters = _declared()
    oracle._set_project_dir(str(tmp_path), "p")
    first = oracle.create_trial("t0").hyperparameters.values
    second = oracle.create_trial("t1").hyperparameters.values
    strip = lambda v: {k: x for k, x in v.items() if not k.startswith("tuner/")}  # noqa: E731
    base = kt.HyperParameters()
    CNNHyperModel(input_shape=(16, 16, 1)).declare_hyperparameters(base)
    defaults = {k: v for k, v in base.values.items() if base.is_active(k)}
    assert strip(first) == defaults == default_values(_declared())
    assert (first["conv_blocks"], first["conv_filters"], first["dense_layers"]) == (2, 32, 1)
    assert strip(second) != defaults


def test_a_short_hyperband_round_shrinks_and_its_promoted_trials_reach_max_epochs(tmp_path):
    """Most first-round trials fail, so round 1 has fewer candidates than slots: the trials
    already promoted into it must still go on to the last round, at --max-epochs."""
    oracle = make_oracle("hyperband", objective="val_auc", direction="max", max_trials=20,
                         max_epochs=30, min_epochs=4, seed=1, family="cnn")
    oracle.hyperparameters, oracle._display.verbose = _declared(), 0
    oracle._set_project_dir(str(tmp_path), "p")
    plan = None
    seen = []
    while (trial := oracle.create_trial("tuner0")).status == "RUNNING":
        values = trial.hyperparameters.values
        plan = plan or [list(p) for p in oracle._brackets[0]["plan"]]  # as planned
        seen.append((trial.trial_id, values["tuner/bracket"], values["tuner/round"],
                     values["tuner/epochs"], values.get("tuner/trial_id")))
        # Only two first-round trials of the first bracket finish; the rest fail.
        ok = values["tuner/round"] > 0 or trial.trial_id in ("0000", "0001") or \
            values["tuner/bracket"] > 0
        if ok:
            oracle.update_trial(trial.trial_id, {"val_auc": 0.5 + int(trial.trial_id) / 100})
        trial.status = "COMPLETED" if ok else "FAILED"
        oracle.end_trial(trial)
    assert len(plan) == 3 and plan[1][0] > 2  # round 1 had more slots than candidates
    first = [s for s in seen if s[1] == 0]
    assert [s[4] for s in first if s[2] == 1] == ["0001", "0000"]  # both promoted, best first
    last = [s for s in first if s[2] == 2]
    assert len(last) == 1 and last[0][3] == 30  # the best of them reached --max-epochs
    promoted_ids = {s[0] for s in first if s[2] == 1}
    assert last[0][4] in promoted_ids
