"""Hyperband done honestly: a promoted trial continues, per fold, from its previous round."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from search_helpers import assert_no_refit, cv_records, tiny_config, tiny_dense_model

from search.engine import run_search_job


def test_promoted_trial_continues_from_previous_round(tmp_path, synthetic_root):
    # max_epochs=3, min_epochs 1 (a third), 4 trials: the bracket runs trials 0-2 for 1 epoch,
    # then promotes the best to trial 3, trained from epoch 1 to epoch 3. A large patience
    # keeps early stopping out.
    cfg = tiny_config(tmp_path, synthetic_root, tuner="hyperband", objective="val_loss",
                      max_trials=4, max_epochs=3, patience=10)
    summary = run_search_job(cfg)
    assert summary["status"] == "completed"
    fam_dir = Path(cfg.run_dir) / "ann"
    records = cv_records(fam_dir)
    assert sorted(records) == [f"trial_000{i}" for i in range(4)]
    first_round = {f"000{i}": records[f"trial_000{i}"] for i in range(3)}
    promoted = records["trial_0003"]
    hb = promoted["hyperband"]
    assert hb["epochs"] == 3 and hb["initial_epoch"] == 1 and hb["round"] == 1
    # the oracle promoted the best first-round trial (val_loss: lowest)
    best = min(first_round, key=lambda t: first_round[t]["mean"]["val_loss"])
    assert hb["trial_id"] == best
    assert promoted["hyperparameters"] == first_round[best]["hyperparameters"]
    for k in range(2):
        prev = json.loads((fam_dir / f"trial_{best}" / f"fold{k}.json").read_text())
        cont = json.loads((fam_dir / "trial_0003" / f"fold{k}.json").read_text())
        assert prev["epochs_trained"] == 1 and prev["initial_epoch"] == 0
        assert cont["initial_epoch"] == 1 and cont["carried_from"] == f"trial_{best}"
        # the continued round starts where the previous one ended (same weights, same data)
        assert cont["start_eval"]["val_loss"] == pytest.approx(prev["best"]["val_loss"],
                                                               rel=1e-4, abs=1e-5)
        # epochs add up to the bracket's budget, not more
        assert prev["epochs_trained"] + cont["epochs_trained"] == hb["epochs"]
        assert len(cont["history"]["loss"]) == 2
        if cont["kept_carried_weights"]:  # the round never beat its starting point
            assert cont["best_epoch"] == prev["best_epoch"] and cont["best"] == prev["best"]
        else:
            assert 2 <= cont["best_epoch"] <= 3
    assert_no_refit(fam_dir)
    log = (Path(cfg.run_dir) / "search.log").read_text()
    assert "hyperband: 3 configurations x 1 epoch, best 1 continues to 3 epochs" in log
    assert f"round 2, 3 epochs, continues {best}" in log
    # One row per configuration: the promoted one shows its latest round; analyze-style
    # grouping compares every configuration at its first round (1 epoch).
    from results.leaderboard import best_trials, build_leaderboard

    rows = build_leaderboard(cfg.run_dir, "ann")
    assert len(rows) == 3
    by_trial = {r["trial_id"]: r for r in rows}
    assert by_trial["0003"]["rounds"] == 2 and by_trial["0003"]["epochs"] == 3
    assert best not in by_trial
    first = build_leaderboard(cfg.run_dir, "ann", rounds="first")
    assert sorted(r["trial_id"] for r in first) == ["0000", "0001", "0002"]
    assert {r["epochs"] for r in first} == {1}
    assert len(build_leaderboard(cfg.run_dir, "ann", rounds="all")) == 4
    top = [t["trial_id"] for t in best_trials(cfg.run_dir, "ann", 5)]
    assert len(top) == 3 and best not in top


class _DegradingHyperModel:
    """A tiny real model whose "training" only makes the validation loss worse."""

    def build(self, hp):
        return tiny_dense_model()

    def fit(self, hp, model, x, y, *, validation_data, epochs, initial_epoch, callbacks,
            verbose, seed):
        import keras
        import numpy as np

        hist = keras.callbacks.History()
        hist.history = {"loss": [], "val_loss": []}
        for _ in range(initial_epoch, epochs):
            model.set_weights([w + 5.0 for w in model.get_weights()])
            hist.history["loss"].append(float(model.evaluate(x, y, verbose=0)))
            hist.history["val_loss"].append(float(model.evaluate(*validation_data, verbose=0)))
        return hist


def test_round_that_never_beats_its_start_keeps_the_carried_weights(tmp_path):
    import numpy as np

    from search.fit.fold_fit import fit_fold, fold_weights

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 4)).astype("float32"), (rng.random(32) > 0.5).astype("float32")
    common = dict(hypermodel=_DegradingHyperModel(), hp=None, family_dir=tmp_path, fold=0,
                  x_tr=x, y_tr=y, x_va=x, y_va=y, objective="val_loss", direction="min",
                  patience=10, seed=1)
    prev_dir, cont_dir = tmp_path / "trial_0000", tmp_path / "trial_0001"
    prev_dir.mkdir()
    cont_dir.mkdir()
    prev = fit_fold(trial_id="0000", trial_dir=prev_dir, epochs=1, initial_epoch=0,
                    carry_from=None, **common)
    cont = fit_fold(trial_id="0001", trial_dir=cont_dir, epochs=3, initial_epoch=1,
                    carry_from=fold_weights(prev_dir, 0), **common)
    assert cont["kept_carried_weights"] is True
    assert cont["best_epoch"] == prev["best_epoch"] == 1
    assert cont["best"] == prev["best"]
    assert min(cont["history"]["val_loss"]) > prev["best"]["val_loss"]  # the round got worse


def test_hyperband_with_a_probe_objective_promotes_by_the_probe(tmp_path, synthetic_root):
    # The probe exists once per fold (at the restored epoch), not per epoch: the oracle ranks
    # and promotes by its fold mean, while epochs and the carried weights follow val_auc.
    cfg = tiny_config(tmp_path, synthetic_root, tuner="hyperband", objective="val_auc_geometric",
                      max_trials=4, max_epochs=3, patience=10)
    assert run_search_job(cfg)["status"] == "completed"
    fam_dir = Path(cfg.run_dir) / "ann"
    records = cv_records(fam_dir)
    first_round = {f"000{i}": records[f"trial_000{i}"] for i in range(3)}
    hb = records["trial_0003"]["hyperband"]
    assert hb["round"] == 1
    assert hb["trial_id"] == max(first_round,
                                 key=lambda t: first_round[t]["mean"]["val_auc_geometric"])
    for k in range(2):
        cont = json.loads((fam_dir / "trial_0003" / f"fold{k}.json").read_text())
        assert "val_auc" in cont["start_eval"] and "val_auc_geometric" in cont["best"]
        # The restored epoch's metrics (val_auc is the exact one of the probes, not Keras').
        hist_best = cont["history"]["val_loss"][cont["best_epoch"] - cont["initial_epoch"] - 1] \
            if not cont["kept_carried_weights"] else None
        if hist_best is not None:
            assert cont["best"]["val_loss"] == hist_best
    trial = json.loads((fam_dir / "trial_0003" / "trial.json").read_text())
    assert trial["score"] == pytest.approx(records["trial_0003"]["mean"]["val_auc_geometric"])
    assert_no_refit(fam_dir)
