"""The transfer family end to end without internet: MobileNetV3Small at its 32 px minimum
through search, resume, export, reload and predict; a local weights file through --weights
PATH; the refusals that come before any training."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from search_helpers import assert_no_refit, cv_records, tiny_config

from search.config import SearchConfig, resolve_weights, validate
from search.engine import run_search_job
from search.errors import SearchError
from spaces import backbones as bb

TRANSFER_SPACE = """
[common]
batch_size = 32
augmentation = false
lr_schedule = "constant"
learning_rate = {min = 1e-3, max = 1e-2, sampling = "log"}
[transfer]
backbone = "mobilenetv3small"
input_size = 0
dense_layers = {min = 0, max = 1}
dense_units = 32
fine_tune_blocks = {min = 1, max = 2}
head_epochs = 1
"""


def _config(tmp_path: Path, data: Path, **overrides) -> SearchConfig:
    space = tmp_path / "transfer_space.toml"
    space.write_text(TRANSFER_SPACE)
    values = dict(model="transfer", image_size=32, space_file=str(space), max_trials=1,
                  max_epochs=2, folds=2)
    values.update(overrides)
    return tiny_config(tmp_path, data, **values)


def test_weights_belong_to_the_transfer_family_and_default_to_imagenet(tmp_path):
    with pytest.raises(SearchError, match="--model cnn does not search it"):
        validate(SearchConfig(model="cnn", weights="imagenet"))
    with pytest.raises(SearchError, match="no such file"):
        validate(SearchConfig(model="transfer", weights=str(tmp_path / "nope.h5")))
    assert resolve_weights(validate(SearchConfig(model="transfer"))).weights == "imagenet"
    assert resolve_weights(validate(SearchConfig(model="both"))).weights is None
    assert SearchConfig(model="both").families == ["cnn", "ann"]  # both stays CNN + ANN


def test_offline_imagenet_is_refused_before_the_run_folder_exists(tmp_path, synthetic_root,
                                                                   monkeypatch):
    if list(bb.keras_cache_dir().glob("weights_mobilenet_v3_small*no_top*")):
        pytest.skip("the ImageNet file is cached on this machine")

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable (test)")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    cfg = _config(tmp_path, synthetic_root, weights=None)
    with pytest.raises(bb.WeightsError, match="--weights PATH"):
        run_search_job(cfg)
    assert not Path(cfg.run_dir).exists()  # nothing loaded, locked or trained


@pytest.mark.slow  # 3 trials x 2 folds of MobileNetV3 plus an export: ~3 min on 2 loaded cores
def test_search_resume_export_reload_predict_from_scratch(tmp_path, synthetic_root):
    from results.export import export_winners
    from results.model_io import load_export

    cfg = _config(tmp_path, synthetic_root, weights="none")
    assert run_search_job(cfg)["status"] == "completed"
    run_dir = Path(cfg.run_dir)
    assert "trains from scratch" in (run_dir / "search.log").read_text()
    assert json.loads((run_dir / "run.json").read_text())["config"]["weights"] == "none"
    # Extending the finished search resumes it: the first trial's folds are not trained again.
    summary = run_search_job(_config(tmp_path, synthetic_root, weights="none", max_trials=2))
    assert summary["families"]["transfer"]["trials_completed"] == 2
    assert_no_refit(run_dir / "transfer")
    records = cv_records(run_dir / "transfer")
    assert all(r["status"] == "COMPLETED" and r["n_params"] > 900_000 for r in records.values())

    results = export_winners(run_dir, model="transfer", progress=False, with_single=False)
    # The default export selects over the finished configurations (results/selection.py); with
    # one member it is that configuration's fold ensemble.
    assert [r.family for r in results] == ["transfer"]
    assert results[0].ensemble in ("select", "folds")
    export = load_export(run_dir / "exports" / "transfer" / "rank1")
    import data_pipeline

    ds = data_pipeline.load_dataset(synthetic_root, image_size=32, progress=False)
    prob = export.model.predict(ds.x[:6].astype("float32"), verbose=0).ravel()
    assert prob.shape == (6,) and np.all((prob >= 0) & (prob <= 1))
    # The report reads the ensemble's first fold model at its backbone's last convolution.
    from results.report.compare import compare_models

    report = compare_models(run_dir, n_boot=20, n_gradcam=1, progress=False)
    assert set(report["models"]) == {"transfer"}
    cam = report["gradcam_transfer"]
    assert cam["figure"] and Path(cam["figure"]).is_file(), cam
    assert cam["layer"].startswith("backbone/")


@pytest.mark.slow  # one trial, two folds, two stages each, then a retrain: ~4 min
def test_local_weights_file_through_weights_path_starts_every_fold(tmp_path, synthetic_root):
    import keras

    path = tmp_path / "mobilenetv3small_notop.weights.h5"
    source = bb.make_backbone("mobilenetv3small", 32, None)
    source.save_weights(str(path))
    cfg = _config(tmp_path, synthetic_root, weights=str(path), max_epochs=2)
    assert run_search_job(cfg)["status"] == "completed"
    run_dir = Path(cfg.run_dir)
    assert f"weights from {path}" in (run_dir / "search.log").read_text()
    trial = next(iter(cv_records(run_dir / "transfer")))
    # The stem is frozen in both stages, so the fold's saved model still holds the file's
    # weights there: they came from --weights PATH, not from a fresh initialisation.
    import keras_tuner as kt

    from spaces import load_space
    from spaces.transfer import TransferHyperModel

    hm = TransferHyperModel((32, 32, 1), weights=None, space=load_space(cfg.space_file))
    hp = kt.HyperParameters()
    hp.values.update(cv_records(run_dir / "transfer")[trial]["hyperparameters"])
    model = hm.build(hp)
    model.load_weights(str(run_dir / "transfer" / trial / "fold0.weights.h5"))
    got = model.get_layer("backbone").get_layer("conv").get_weights()[0]
    np.testing.assert_array_equal(got, source.get_layer("conv").get_weights()[0])
    keras.backend.clear_session()
    _moved_weights_file(tmp_path, synthetic_root, path, run_dir)


def _moved_weights_file(tmp_path: Path, data: Path, path: Path, run_dir: Path) -> None:
    """The --weights file moves after the search (issue 30, items 13 and 14)."""
    import subprocess
    import sys

    from results.export import export_winners

    moved = tmp_path / "moved.weights.h5"
    path.rename(moved)
    # The plain export retrains rank1_single from the recorded file: one paragraph, exit 2,
    # before any training (no exports folder), instead of Keras' raw ValueError.
    out = subprocess.run([sys.executable, "run_search.py", "export", "--run-dir", str(run_dir),
                          "--model", "transfer"], cwd=Path(__file__).resolve().parents[2],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "does not exist any more" in out.stderr and "--weights PATH" in out.stderr
    assert not (run_dir / "exports").exists()
    # export --weights MOVED: matched by sha256, the retrained model starts from it.
    done = export_winners(run_dir, model="transfer", ensemble="none", weights=moved,
                          progress=False)
    assert len(done) == 1 and (done[0].path / "model.keras").is_file()
    # A resume from the byte-identical copy is the same run, and records the new path ...
    cfg = _config(tmp_path, data, weights=str(moved), max_epochs=2)
    assert run_search_job(cfg)["status"] == "completed"
    run = json.loads((run_dir / "run.json").read_text())
    assert run["config"]["weights"] == str(moved.resolve())
    # ... while another file at that same path is refused, naming the content check.
    bb.make_backbone("mobilenetv3small", 32, None).save_weights(str(moved))
    with pytest.raises(SearchError, match="not the one the run was searched with"):
        run_search_job(_config(tmp_path, data, weights=str(moved), max_epochs=2))
