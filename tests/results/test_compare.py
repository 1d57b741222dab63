"""The comparison report on a tiny exported run: every output, numbers, one-family runs, refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from results.errors import ResultsError


@pytest.fixture(scope="module")
def report(exported_run: Path, tmp_path_factory: pytest.TempPathFactory):
    from results.compare import compare_models

    out = tmp_path_factory.mktemp("report")
    return compare_models(exported_run, out_dir=out, n_boot=60, progress=False), out


def test_compare_writes_all_outputs(report):
    result, out = report
    for name in ("report.md", "report.html", "metrics.json", "metrics.csv"):
        assert (out / name).is_file(), name
    for key in ("roc_pr", "confusion", "calibration", "learning_curves"):
        assert Path(result["figures"][key]).is_file(), key
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4
    assert 'src="figures' not in html  # self-contained
    md = (out / "report.md").read_text()
    assert md.index("Verdict") < md.index("Metrics at the exported threshold")
    assert "SYNTHETIC" not in md  # the test folder is not the built-in set


def test_gradcam_under_tensorflow(report):
    import keras

    result, _ = report
    if keras.backend.backend() in ("tensorflow", "jax"):
        assert result["gradcam"]["figure"] and Path(result["gradcam"]["figure"]).is_file()
        assert result["gradcam"]["examples"]


def test_metrics_json_matches_sklearn(report, exported_run: Path):
    import data_pipeline

    from results.compare import probabilities
    from results.model_io import load_export

    result, out = report
    saved = json.loads((out / "metrics.json").read_text())
    run = json.loads((exported_run / "run.json").read_text())
    ds = data_pipeline.load_dataset(run["config"]["data"], image_size=16, progress=False)
    split = data_pipeline.load_split(exported_run / "split.json", ds)
    y = ds.y[split.test_idx]
    for family in ("cnn", "ann"):
        export = load_export(exported_run / "exports" / family / "rank1")
        p = probabilities(export.model, ds.x[split.test_idx])
        m = saved["models"][family]
        pred = (p >= m["threshold"]).astype(int)
        at = m["at_threshold"]
        assert at["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p), abs=1e-6)
        assert at["pr_auc"] == pytest.approx(skm.average_precision_score(y, p), abs=1e-6)
        assert at["sensitivity"] == pytest.approx(skm.recall_score(y, pred))
        assert at["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
        assert at["brier"] == pytest.approx(skm.brier_score_loss(y, p), abs=1e-6)
        lo, hi = saved["bootstrap"]["ci"][family]["sensitivity"]
        assert lo <= at["sensitivity"] <= hi
        assert m["n_params"] > 0 and m["latency_ms"]["batch_1"] > 0
    assert saved["mcnemar"]["at_threshold"]["p_value"] <= 1.0
    assert saved["bootstrap"]["unit"] == "patient"


def test_metrics_csv_has_every_metric(report):
    import csv

    _, out = report
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    from results.metrics import SCALAR_METRICS

    for family in ("cnn", "ann"):
        got = {r["metric"] for r in rows if r["model"] == family}
        assert set(SCALAR_METRICS) <= got


def test_only_one_family_exported(exported_run: Path, tmp_path: Path):
    from results.compare import compare_models

    run = tmp_path / "one"
    shutil.copytree(exported_run, run, ignore=shutil.ignore_patterns("report", "ann"))
    result = compare_models(run, n_boot=20, n_gradcam=1, progress=False)
    assert list(result["models"]) == ["cnn"] and not result["mcnemar"]
    assert "Only the CNN" in (run / "report" / "report.md").read_text()


def test_test_dir_with_other_classes_is_refused(exported_run: Path, synthetic_root: Path,
                                                tmp_path: Path):
    from results.compare import compare_models

    other = tmp_path / "other"
    for src, dst in (("NORMAL", "HEALTHY"), ("PNEUMONIA", "SICK")):
        shutil.copytree(synthetic_root / "train" / src, other / dst)
    with pytest.raises(ResultsError) as err:
        compare_models(exported_run, test_dir=other, out_dir=tmp_path / "r", progress=False)
    assert "HEALTHY" in str(err.value) and "PNEUMONIA" in str(err.value)


def test_test_dir_kaggle_folder(exported_run: Path, synthetic_root: Path, tmp_path: Path):
    from results.compare import compare_models

    other = tmp_path / "kaggle"
    for cls in ("NORMAL", "PNEUMONIA"):
        shutil.copytree(synthetic_root / "train" / cls, other / "test" / cls)
    result = compare_models(exported_run, test_dir=other, out_dir=tmp_path / "r", n_boot=20,
                            n_gradcam=1, progress=False)
    assert result["n_test"] == sum(1 for _ in other.rglob("*.jpeg"))
    assert np.isfinite(result["models"]["cnn"]["at_threshold"]["accuracy"])
