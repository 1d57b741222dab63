"""Export of the winners: files, threshold record, reload reproducing predictions, bad runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from results.errors import ResultsError
from results.model_io import EXPORT_FILES, chosen_epochs, load_export


@pytest.mark.parametrize("family", ["cnn", "ann"])
def test_export_writes_every_file(exported_run: Path, family: str):
    out = exported_run / "exports" / family / "rank1"
    for name in EXPORT_FILES:
        assert (out / name).is_file(), name
    meta = json.loads((out / "metadata.json").read_text())
    for key in ("class_names", "positive_class", "image_size", "color_mode", "backend",
                "versions", "data_fingerprint", "seed", "cv", "trial_id", "n_params"):
        assert key in meta, key
    assert meta["class_names"] == ["NORMAL", "PNEUMONIA"] and meta["image_size"] == 16
    assert meta["cv"]["mean"]["val_auc"] == pytest.approx(0.81)
    thr = json.loads((out / "threshold.json").read_text())
    for key in ("sensitivity_target", "youden"):
        assert {"threshold", "sensitivity", "specificity", "precision"} <= set(thr[key])
    assert thr["sensitivity_target"]["sensitivity"] >= 0.95
    hp = json.loads((out / "hyperparameters.json").read_text())
    assert not any(k.startswith("tuner/") for k in hp["values"])
    assert "history" in json.loads((out / "history.json").read_text())


def _pool_and_fold_models(run_dir: Path, synthetic_root: Path, family: str = "cnn"):
    """The run's training pool, folds and the trial's fold models, rebuilt independently."""
    import keras_tuner as kt

    import data_pipeline
    import spaces

    ds = data_pipeline.load_dataset(synthetic_root, image_size=16, progress=False)
    split = data_pipeline.load_split(run_dir / "split.json", ds)
    pool = np.asarray(split.train_idx)
    folds = data_pipeline.make_folds(ds.y[pool], ds.groups[pool], 2, 42)
    hm = spaces.HYPERMODELS[family]((16, 16, 1))
    models = []
    for k in range(2):
        hp = kt.HyperParameters()
        hp.values.update(json.loads((run_dir / family / "trial_0000" / "cv.json").read_text())
                         ["hyperparameters"])
        model = hm.build(hp)
        model.load_weights(str(run_dir / family / "trial_0000" / f"fold{k}.weights.h5"))
        models.append(model)
    return ds, pool, folds, models


def test_fold_ensemble_is_the_mean_of_the_fold_models_with_an_out_of_fold_threshold(
        exported_run: Path, synthetic_root: Path):
    from results.thresholds import operating_point

    export = load_export(exported_run / "exports" / "cnn" / "rank1")
    assert export.metadata["ensemble"] == {"kind": "folds", "members": ["0000"], "n_models": 2}
    ds, pool, folds, models = _pool_and_fold_models(exported_run, synthetic_root)
    x = ds.x.astype("float32")
    mean = np.mean([m.predict(x, verbose=0).ravel() for m in models], axis=0)
    np.testing.assert_allclose(export.model.predict(x, verbose=0).ravel(), mean, atol=1e-5)
    # The threshold's counts are those of the out-of-fold scores over the whole pool.
    oof = np.zeros(len(pool))
    for k, (_, va) in enumerate(folds):
        oof[va] = models[k].predict(x[pool[va]], verbose=0).ravel()
    thr = export.threshold
    assert thr["source"] == "out_of_fold_early_stopped" and thr["n_validation"] == len(pool)
    # It says what it is: fold models early-stopped on these images, so optimistic.
    assert thr["optimistic"] is True and thr["members_per_score"] == 1
    assert "early-stopped" in thr["note"] and "no score of the ensemble" in thr["note"]
    op = operating_point(ds.y[pool], oof, thr["threshold"])
    for key in ("tp", "fp", "tn", "fn"):
        assert op[key] == thr["sensitivity_target"][key]
    spread = thr["spread"]
    assert [r["fold"] for r in spread["per_fold"]] == [0, 1]
    assert spread["threshold_min"] <= spread["threshold_max"]
    for row in spread["per_fold"]:
        va = folds[row["fold"]][1]
        assert row["specificity"] == pytest.approx(
            operating_point(ds.y[pool[va]], oof[va], thr["threshold"])["specificity"])


def test_single_export_retrains_and_carries_its_own_slice_threshold(
        tmp_path: Path, exported_run: Path, synthetic_root: Path):
    import shutil

    import data_pipeline
    from results.export import export_winners
    from results.thresholds import operating_point

    run_dir = tmp_path / "run"
    shutil.copytree(exported_run, run_dir, ignore=shutil.ignore_patterns("exports"))
    export_winners(run_dir, model="cnn", progress=False, ensemble=["none"])
    export = load_export(run_dir / "exports" / "cnn" / "rank1")
    meta = export.metadata
    # Its own threshold, not the fold models' (other models, other score scale).
    thr = export.threshold
    assert meta["ensemble"]["kind"] == "none" and thr["source"] == "slice"
    assert meta["threshold_source"] == "slice" and thr["optimistic"] is True
    assert thr["out_of_fold"]["source"] == "out_of_fold_early_stopped"  # for reference
    ds = data_pipeline.load_dataset(synthetic_root, image_size=16, progress=False)
    val = np.isin(np.asarray(ds.paths), meta["validation_paths"])
    assert val.sum() == meta["n_validation"] == thr["n_validation"]
    prob = export.model.predict(ds.x[val].astype("float32"), verbose=0).ravel()
    # The exported threshold is recorded with the counts of these very predictions.
    op = operating_point(ds.y[val], prob, thr["threshold"])
    for key in ("tp", "fp", "tn", "fn"):
        assert op[key] == thr["sensitivity_target"][key]
    again = load_export(export.path).model.predict(ds.x[val].astype("float32"), verbose=0).ravel()
    assert np.allclose(prob, again, atol=1e-6)


def test_top_n_ensemble_averages_distinct_configurations(tmp_path: Path, exported_run: Path,
                                                        synthetic_root: Path):
    import shutil

    from results.export import export_winners

    run_dir = tmp_path / "run"
    shutil.copytree(exported_run, run_dir, ignore=shutil.ignore_patterns("exports"))
    # Trial 0001: the same configuration as 0000 (a later Hyperband round) scored higher;
    # trial 0002: another configuration. The top-2 ensemble is 0001 + 0002, never 0001 + 0000.
    for tid, extra, score in (("0001", {}, 0.9), ("0002", {"learning_rate": 1e-3}, 0.85)):
        src = run_dir / "cnn" / "trial_0000"
        dst = run_dir / "cnn" / f"trial_{tid}"
        shutil.copytree(src, dst)
        cv = json.loads((dst / "cv.json").read_text())
        cv["trial_id"] = tid
        cv["hyperparameters"].update(extra)
        cv["mean"]["val_auc"] = score
        (dst / "cv.json").write_text(json.dumps(cv))
        state = json.loads((dst / "trial.json").read_text())
        state["trial_id"] = tid
        state["hyperparameters"]["values"].update(extra)
        (dst / "trial.json").write_text(json.dumps(state))
    results = export_winners(run_dir, model="cnn", progress=False, ensemble="top 2")
    # The ensemble, and the rank-1 trial retrained once beside it for compare.
    assert [(r.ensemble, r.path.name) for r in results] == [("top", "rank1"),
                                                            ("none", "rank1_single")]
    top = load_export(run_dir / "exports" / "cnn" / "rank1")
    meta = top.metadata
    assert meta["ensemble"] == {"kind": "top", "members": ["0001", "0002"], "n_models": 4}
    # The threshold is chosen on the members' fold-k models averaged, as the export averages.
    assert top.threshold["members_per_score"] == 2 and "0001, 0002" in top.threshold["scores"]
    single = load_export(run_dir / "exports" / "cnn" / "rank1_single")
    assert single.threshold["source"] == "slice"


@pytest.mark.parametrize("words", [["top"], ["top", "1"], ["all"], ["folds", "2"]])
def test_bad_ensemble_option_is_refused_with_the_accepted_forms(words):
    from results.export import parse_ensemble

    with pytest.raises(ResultsError, match="top N"):
        parse_ensemble(words)


def test_missing_fold_weights_say_how_to_fix(tmp_path: Path, exported_run: Path):
    import shutil

    from results.export import export_winners

    run_dir = tmp_path / "run"
    shutil.copytree(exported_run, run_dir, ignore=shutil.ignore_patterns("exports"))
    (run_dir / "cnn" / "trial_0000" / "fold1.weights.h5").unlink()
    with pytest.raises(ResultsError, match="fold1.weights.h5 is missing.*--ensemble none"):
        export_winners(run_dir, model="cnn", progress=False)


def test_chosen_epochs_is_median_best_epoch():
    # best_epoch counts from 1 (search/fit/fold_fit.py), so the median is the epoch count itself.
    rec = {"folds": [{"best_epoch": 3}, {"best_epoch": 5}, {"best_epoch": 4}]}
    assert chosen_epochs(rec) == 4


def test_empty_folder_says_run_search_first(tmp_path: Path):
    from results.export import export_winners

    with pytest.raises(ResultsError, match="run_search.py search"):
        export_winners(tmp_path / "nothing")


def test_run_without_completed_trials_says_what_to_run(tmp_path: Path, fake_run_factory):
    from results.export import export_winners

    run_dir = fake_run_factory("empty", with_running=True, with_failed=True)
    for cv in run_dir.glob("*/trial_*/cv.json"):
        data = json.loads(cv.read_text())
        data["status"] = "FAILED"
        cv.write_text(json.dumps(data))
    with pytest.raises(ResultsError, match="no completed"):
        export_winners(run_dir, progress=False)


def test_compare_without_exports_says_export_first(fake_run_dir: Path):
    from results.report.compare import compare_models

    with pytest.raises(ResultsError, match="run_search.py export"):
        compare_models(fake_run_dir)


def test_export_follows_the_leaderboard_ranking_and_notes_a_live_search(
        fake_run_dir: Path, trial_writer, monkeypatch, capsys):
    import results.export as export
    import results.model_io as model_io

    # A trial killed after its last fold but before cv.json: the leaderboard rebuilds it from
    # the fold files and ranks it first, so export must pick it too (one ranking, not two).
    trial_writer(fake_run_dir / "cnn", "0009", {"conv_blocks": 2}, fold_scores=[0.99, 0.98, 0.99],
                 write_cv=False)
    picked = []
    monkeypatch.setattr(export, "load_run_data", lambda *a, **k: (None, type(
        "S", (), {"train_idx": np.arange(3)})()))
    monkeypatch.setattr(export, "retrain_and_export", lambda run_dir, run, record, rank, *a, **k:
                        picked.append((record["family"], rank, record["trial_id"])))
    export.export_winners(fake_run_dir, top_n=2, progress=False, with_single=False)
    assert picked == [("cnn", 1, "0009"), ("cnn", 2, "0002"), ("ann", 1, "0002"),
                      ("ann", 2, "0000")]
    assert not hasattr(model_io, "completed_trials")
    # fake_run_dir holds a lock of a search on another host: a live search.
    assert f"a search is still running in {fake_run_dir}; exporting the best trial so far" in \
        capsys.readouterr().err


def test_compare_notes_a_live_search(fake_run_dir: Path, capsys):
    from results.report.compare import compare_models

    with pytest.raises(ResultsError):
        compare_models(fake_run_dir)
    assert f"a search is still running in {fake_run_dir}" in capsys.readouterr().err


def test_metadata_versions_come_from_the_run_folder_helper(exported_run: Path):
    meta = json.loads((exported_run / "exports" / "cnn" / "rank1" / "metadata.json").read_text())
    # search.store.run_folder.versions(): the same keys as run.json's versions (platform included).
    assert meta["versions"]["backend"] == meta["backend"]
    assert {"python", "platform", "keras", "keras_tuner", "numpy"} <= set(meta["versions"])
    assert meta["target_sensitivity"] == 0.95


def test_write_json_is_durable_and_nan_safe(tmp_path: Path, monkeypatch):
    import os

    from results.model_io import write_json

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    write_json(tmp_path / "m.json", {"a": float("nan"), "b": np.float32(1.5)})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": None, "b": 1.5}
    assert synced and [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_printed_retrained_score_says_where_it_was_measured(tmp_path: Path):
    from results.export import format_result
    from results.winner_export import ExportResult

    line = format_result(ExportResult("cnn", 1, "0002", tmp_path, "val_auc", 0.9, 0.01, 0.97, 4,
                                      4, 0.3, 1000))
    assert "retrained validation val_auc 0.9700 (on the slice that also drove early" in line


def test_exports_carry_no_augmentation(tmp_path: Path, exported_run: Path):
    import shutil

    import keras

    from results.export import export_winners

    run_dir = tmp_path / "run"
    shutil.copytree(exported_run, run_dir, ignore=shutil.ignore_patterns("exports"))
    trial = run_dir / "cnn" / "trial_0000"
    for name in ("cv.json", "trial.json"):
        state = json.loads((trial / name).read_text())
        values = state["hyperparameters"] if name == "cv.json" else \
            state["hyperparameters"]["values"]
        values.update(augmentation=True, augmentation_strength=0.5)
        (trial / name).write_text(json.dumps(state))
    export_winners(run_dir, model="cnn", progress=False)  # the ensemble and rank1_single

    def layer_names(model):
        for layer in model.layers:
            yield layer.name
            if isinstance(layer, keras.Model):
                yield from layer_names(layer)

    for name in ("rank1", "rank1_single"):
        export = load_export(run_dir / "exports" / "cnn" / name)
        assert export.hyperparameters["values"]["augmentation"] is True
        assert not [n for n in layer_names(export.model) if n.startswith("augmentation")]
