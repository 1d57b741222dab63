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


def test_reloaded_model_reproduces_predictions(exported_run: Path, synthetic_root: Path):
    import data_pipeline

    export = load_export(exported_run / "exports" / "cnn" / "rank1")
    meta = export.metadata
    ds = data_pipeline.load_dataset(synthetic_root, image_size=16, progress=False)
    val = np.isin(np.asarray(ds.paths), meta["validation_paths"])
    assert val.sum() == meta["n_validation"]
    prob = export.model.predict(ds.x[val].astype("float32"), verbose=0).ravel()
    from results.thresholds import operating_point

    op = operating_point(ds.y[val], prob, export.threshold["threshold"])
    # The threshold was chosen on these very predictions before saving: same calls after reload.
    for key in ("tp", "fp", "tn", "fn"):
        assert op[key] == export.threshold["sensitivity_target"][key]
    # And a second reload gives identical numbers.
    again = load_export(export.path).model.predict(ds.x[val].astype("float32"), verbose=0).ravel()
    assert np.allclose(prob, again, atol=1e-6)


def test_chosen_epochs_is_median_best_epoch():
    # best_epoch counts from 1 (search/fold_fit.py), so the median is the epoch count itself.
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
    from results.compare import compare_models

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
    export.export_winners(fake_run_dir, top_n=2, progress=False)
    assert picked == [("cnn", 1, "0009"), ("cnn", 2, "0002"), ("ann", 1, "0002"),
                      ("ann", 2, "0000")]
    assert not hasattr(model_io, "completed_trials")
    # fake_run_dir holds a lock of a search on another host: a live search.
    assert f"a search is still running in {fake_run_dir}; exporting the best trial so far" in \
        capsys.readouterr().err


def test_compare_notes_a_live_search(fake_run_dir: Path, capsys):
    from results.compare import compare_models

    with pytest.raises(ResultsError):
        compare_models(fake_run_dir)
    assert f"a search is still running in {fake_run_dir}" in capsys.readouterr().err


def test_metadata_versions_come_from_the_run_folder_helper(exported_run: Path):
    meta = json.loads((exported_run / "exports" / "cnn" / "rank1" / "metadata.json").read_text())
    # search.run_folder.versions(): the same keys as run.json's versions (platform included).
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
    from results.export import ExportResult, format_result

    line = format_result(ExportResult("cnn", 1, "0002", tmp_path, "val_auc", 0.9, 0.01, 0.97, 4,
                                      4, 0.3, 1000))
    assert "retrained validation val_auc 0.9700 (on the slice that also drove early" in line
