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
