"""The time budget inside a fold, pruned Hyperband rounds, and epoch accounting of continued
Hyperband rounds (the ladder itself: tests/search/test_ladder.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from search_helpers import (cv_records, finish_trial, fit_events, tiny_config, tiny_dense_model,
                            toy_oracle)

from search.engine import run_search_job


def test_pruned_trials_are_never_promoted_or_best(tmp_path):
    import keras_tuner as kt

    from search.tuners.oracles import PRUNED_METRIC, make_oracle
    from spaces import CNNHyperModel

    oracle = make_oracle("hyperband", objective="val_auc", direction="max", max_trials=10,
                         max_epochs=10, seed=1, family="cnn")
    hp = kt.HyperParameters()
    CNNHyperModel(input_shape=(16, 16, 1)).declare_hyperparameters(hp)
    oracle.hyperparameters, oracle._display.verbose = hp, 0
    oracle._set_project_dir(str(tmp_path), "p")
    promoted = []
    while (trial := oracle.create_trial("tuner0")).status == "RUNNING":
        values = trial.hyperparameters.values
        pruned = trial.trial_id in ("0002", "0005")
        metrics = {"val_auc": 0.99 if pruned else 0.5 + int(trial.trial_id) / 100}
        if pruned:
            metrics[PRUNED_METRIC] = 1.0
        oracle.update_trial(trial.trial_id, metrics)
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
        if values["tuner/round"] > 0:
            promoted.append(values["tuner/trial_id"])
    assert promoted == ["0007", "0006"]
    assert oracle.get_best_trials(1)[0].trial_id not in ("0002", "0005")


def test_time_budget_stops_inside_a_fold_at_an_epoch_end(tmp_path, synthetic_root, monkeypatch):
    import search.engine as engine
    from search.schedule.budget import TimeBudget

    ticks = {"t": 0.0}

    def clock():  # every look at the clock is 10 "seconds" later: no wall time involved
        ticks["t"] += 10.0
        return ticks["t"]

    monkeypatch.setattr(engine, "TimeBudget", lambda minutes: TimeBudget(minutes, clock=clock))
    cfg = tiny_config(tmp_path, synthetic_root, max_trials=1, max_epochs=30, patience=30,
                      time_budget_min=1.0)
    assert run_search_job(cfg)["status"] == "budget_exhausted"
    fam_dir = Path(cfg.run_dir) / "ann"
    events = fit_events(fam_dir)
    assert [e["event"] for e in events] == ["start"]  # cut inside the first fold
    assert not (fam_dir / "trial_0000" / "fold0.json").exists()  # discarded: restarts
    assert cv_records(fam_dir)["trial_0000"]["status"] == "RUNNING"
    log = (Path(cfg.run_dir) / "search.log").read_text()
    assert "during a fold (it restarts on resume)" in log

    monkeypatch.setattr(engine, "TimeBudget", TimeBudget)
    cfg.time_budget_min = None
    assert run_search_job(cfg)["status"] == "completed"
    fold0 = json.loads((fam_dir / "trial_0000" / "fold0.json").read_text())
    assert fold0["initial_epoch"] == 0 and fold0["epochs_trained"] >= 1


class _ScriptedHyperModel:
    """A real tiny model whose fit returns a scripted history and records its epoch range."""

    calls: list[tuple[int, int]] = []

    def build(self, hp):
        return tiny_dense_model()

    def fit(self, hp, model, x, y, *, validation_data, epochs, initial_epoch, callbacks,
            verbose, seed):
        import keras

        self.calls.append((initial_epoch, epochs))
        n = epochs - initial_epoch
        hist = keras.callbacks.History()
        if initial_epoch == 0:  # first round: best at epoch 1, then worse (early stop)
            losses = [0.5, 0.6, 0.7][:n]
        else:  # continued round: far better than anything before, best at its 2nd epoch
            losses = [0.02, 0.01] + [0.03] * (n - 2)
        hist.history = {"loss": losses, "val_loss": losses}
        return hist


def test_continued_round_counts_epochs_from_the_restored_weights(tmp_path):
    from search.fit.fold_fit import fit_fold, fold_weights

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 4)).astype("float32"), (rng.random(32) > 0.5).astype("float32")
    model = _ScriptedHyperModel()
    model.calls.clear()
    common = dict(hypermodel=model, hp=None, family_dir=tmp_path, fold=0, x_tr=x, y_tr=y,
                  x_va=x, y_va=y, objective="val_loss", direction="min", patience=2, seed=1)
    prev_dir, cont_dir = tmp_path / "trial_0000", tmp_path / "trial_0001"
    prev_dir.mkdir()
    cont_dir.mkdir()
    # Round 1: 3 epochs, restored weights from epoch 1.
    prev = fit_fold(trial_id="0000", trial_dir=prev_dir, epochs=3, initial_epoch=0,
                    carry_from=None, **common)
    assert prev["best_epoch"] == 1
    # Round 2 (tuner/epochs 9, tuner/initial_epoch 3): the weights it continues had 1 epoch,
    # so it trains the round's 6 epochs as epochs 2..7, not 4..9.
    cont = fit_fold(trial_id="0001", trial_dir=cont_dir, epochs=9, initial_epoch=3,
                    carry_from=fold_weights(prev_dir, 0), **common)
    assert model.calls == [(0, 3), (1, 7)]
    assert cont["initial_epoch"] == 1 and cont["epochs_trained"] == 6
    assert cont["best_epoch"] == 3  # 1 carried + 2 of this round: what a retrain would need
    assert not cont["kept_carried_weights"]


def test_resume_refuses_another_numeric_setup(tmp_path, synthetic_root):
    from search.errors import SearchError
    from search.store.run_folder import RUNTIME_JSON, check_runtime

    cfg = tiny_config(tmp_path, synthetic_root, max_trials=1, max_epochs=1)
    run_search_job(cfg)
    runtime = json.loads((Path(cfg.run_dir) / RUNTIME_JSON).read_text())
    assert runtime["dtype_policy"] == "float32" and runtime["replicas"] == 1
    cfg.max_trials, cfg.mixed_precision = 2, "bfloat16"
    with pytest.raises(SearchError, match=r"--mixed-precision \(dtype policy\): saved float32, "
                                          r"now mixed_bfloat16") as err:
        run_search_job(cfg)
    assert "--mixed-precision off" in str(err.value)
    assert len(cv_records(Path(cfg.run_dir) / "ann")) == 1  # nothing trained, nothing lost
    with pytest.raises(SearchError,
                       match=r"--data-parallel \(replicas\): saved 1, now 2.*--data-parallel 1"):
        check_runtime(Path(cfg.run_dir), {**runtime, "replicas": 2})
    check_runtime(Path(cfg.run_dir), {**runtime, "replicas": 2}, new_run=True)  # recorded




def test_best_trials_skip_a_round_a_later_pruned_round_continued_and_break_ties_by_id(tmp_path):
    """Issue 30 item 11 and the tied-scores bullet of item 15: the progress line's best and the
    summary name the configuration's latest round (a pruned last round takes it out), and on a
    tie the lower trial id, as the leaderboard and export rank them."""
    from search.tuners.oracles import PRUNED_METRIC

    oracle = toy_oracle("random", tmp_path)
    finish_trial(oracle, {"val_auc": 0.95})
    finish_trial(oracle, {"val_auc": 0.90})
    finish_trial(oracle, {"val_auc": 0.90})
    # The continued round of 0000, pruned: 0000 no longer speaks for its configuration.
    finish_trial(oracle, {"val_auc": 0.97, PRUNED_METRIC: 1.0}, **{"tuner/trial_id": "0000"})
    assert [t.trial_id for t in oracle.get_best_trials(3)] == ["0001", "0002"]
