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
    from results.report.compare import compare_models

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

    from results.report.compare import probabilities
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
    from results.report.compare import compare_models

    run = tmp_path / "one"
    shutil.copytree(exported_run, run, ignore=shutil.ignore_patterns("report", "ann"))
    result = compare_models(run, n_boot=20, n_gradcam=1, progress=False)
    assert list(result["models"]) == ["cnn"] and not result["mcnemar"]
    assert "Only the CNN" in (run / "report" / "report.md").read_text()


def test_test_dir_with_other_classes_is_refused(exported_run: Path, synthetic_root: Path,
                                                tmp_path: Path):
    from results.report.compare import compare_models

    other = tmp_path / "other"
    for src, dst in (("NORMAL", "HEALTHY"), ("PNEUMONIA", "SICK")):
        shutil.copytree(synthetic_root / "train" / src, other / dst)
    with pytest.raises(ResultsError) as err:
        compare_models(exported_run, test_dir=other, out_dir=tmp_path / "r", progress=False)
    assert "HEALTHY" in str(err.value) and "PNEUMONIA" in str(err.value)


def _other_patients(root: Path) -> Path:
    """A Kaggle-style folder (test/ only) of new films under names that name no patient."""
    from data_pipeline import generate_synthetic

    gen = generate_synthetic(root / "gen", seed=99, n_normal_patients=3,
                             n_pneumonia_patients=3, images_per_patient=(1, 2), image_size=16)
    for f in sorted(gen.rglob("*.jpeg")):
        dst = root / "kaggle" / "test" / f.parent.name / f"ext-{f.name}"
        dst.parent.mkdir(parents=True, exist_ok=True)
        f.rename(dst)
    return root / "kaggle"


def test_test_dir_kaggle_folder(exported_run: Path, tmp_path: Path):
    from results.report.compare import compare_models

    other = _other_patients(tmp_path)
    result = compare_models(exported_run, test_dir=other, out_dir=tmp_path / "r", n_boot=20,
                            n_gradcam=1, progress=False)
    assert result["n_test"] == sum(1 for _ in other.rglob("*.jpeg"))
    assert np.isfinite(result["models"]["cnn"]["at_threshold"]["accuracy"])


def _train_pool_paths(run_dir: Path) -> list[str]:
    import data_pipeline

    run = json.loads((run_dir / "run.json").read_text())
    ds = data_pipeline.load_dataset(run["config"]["data"], image_size=16, progress=False)
    split = data_pipeline.load_split(run_dir / "split.json", ds)
    return [ds.paths[i] for i in split.train_idx]


@pytest.mark.parametrize("case", ["run_data", "train_subfolder", "same_bytes", "same_patient"])
def test_test_dir_overlapping_the_training_pool_is_refused(exported_run: Path,
                                                           synthetic_root: Path, tmp_path: Path,
                                                           case: str):
    from PIL import Image

    from results.report.compare import compare_models

    train = _train_pool_paths(exported_run)
    if case == "run_data":  # train/ and no test/: compare would read the training images
        test_dir, rule = synthetic_root, "own data folder"
    elif case == "train_subfolder":
        test_dir, rule = synthetic_root / "train", "own data folder"
    else:
        test_dir = tmp_path / "other"
        for i, rel in enumerate(p for p in train if "NORMAL" in p or "PNEUMONIA" in p):
            cls = Path(rel).parent.name
            dst = test_dir / "test" / cls
            dst.mkdir(parents=True, exist_ok=True)
            if case == "same_bytes":  # renamed copies: new names, same content
                shutil.copyfile(synthetic_root / rel, dst / f"copy-{i}.jpeg")
                rule = "byte-identical"
            else:  # new pixels under a training patient's file name
                Image.fromarray(np.full((16, 16), i % 255, np.uint8)).save(
                    dst / f"{Path(rel).stem}-new.jpeg")
                rule = "patient group"
    with pytest.raises(ResultsError) as err:
        compare_models(exported_run, test_dir=test_dir, out_dir=tmp_path / "r", progress=False)
    msg = str(err.value)
    assert str(test_dir) in msg and rule in msg and "without --test-dir" in msg
    assert not (tmp_path / "r" / "metrics.json").exists()


def _verdict_result(cnn_sens_spec, ann_sens_spec):
    models = {}
    for name, (sens, spec) in (("cnn", cnn_sens_spec), ("ann", ann_sens_spec)):
        models[name] = {"at_threshold": {"sensitivity": sens, "specificity": spec,
                                         "roc_auc": 0.7}, "n_params": 10}
    ci = {n: {"sensitivity": (0.0, 1.0), "specificity": (0.0, 1.0)} for n in models}
    return {"models": models, "positive_class": "PNEUMONIA", "n_test": 40, "n_positive": 30,
            "source": "the carved test split",
            "bootstrap": {"ci": ci, "unit": "patient", "n_boot": 100, "diff_ci": {}}}


def test_verdict_warns_when_a_model_calls_every_image_one_class():
    from results.report.sections import verdict

    text = verdict(_verdict_result((1.0, 0.0), (0.9, 0.8)))
    assert "Warning" in text and "CNN put every test image in the same class" in text
    assert "Warning" not in verdict(_verdict_result((0.95, 0.7), (0.9, 0.8)))


def test_verdict_states_a_degenerate_interval_once():
    from results.report.sections import verdict

    result = _verdict_result((1.0, 1.0), (1.0, 0.8))
    result["bootstrap"]["ci"] = {"cnn": {"sensitivity": (1.0, 1.0), "specificity": (1.0, 1.0)},
                                 "ann": {"sensitivity": (1.0, 1.0), "specificity": (0.6, 0.95)}}
    text = verdict(result)
    assert "100.0% to 100.0%" not in text
    assert text.count("every bootstrap resample gave the same value") == 1
    assert "(95% CI 60.0% to 95.0%)" in text


def test_report_has_the_shortcut_check_and_single_vs_ensemble(report):
    result, out = report
    md = (out / "report.md").read_text()
    assert "## Shortcut check" in md and "## Ensemble vs single model" in md
    for family in ("cnn", "ann"):
        sc = result["models"][family]["shortcut"]
        assert {"clean", "val_auc_border", "val_auc_geometric", "val_auc_robust",
                "leans_on_border"} <= set(sc)
        assert sc["val_auc_robust"] <= sc["clean"] + 1e-12
        pair = result["single_vs_ensemble"][family]
        assert set(pair) == {"ensemble", "single"}
        assert pair["single"]["export"].endswith("rank1_single")
    assert result["models"]["cnn"]["shortcut"]["border_share"] is not None
    assert result["models"]["ann"]["shortcut"]["border_share"] is None  # no convolutions


def test_verdict_warns_on_low_specificity_and_border_reliance():
    from results.report.sections import shortcut_warnings

    models = {"cnn": {"at_threshold": {"specificity": 0.47},
                      "shortcut": {"leans_on_border": True, "clean": 0.91,
                                   "val_auc_border": 0.84, "border_share": 0.66}},
              "ann": {"at_threshold": {"specificity": 0.9},
                      "shortcut": {"leans_on_border": False}}}
    text = shortcut_warnings(models)
    assert "Not ready for use:** the CNN clears only 47.0%" in text
    assert "Shortcut:** the CNN leans on the film's borders" in text and "ANN" not in text


def test_verdict_never_recommends_a_model_with_undefined_specificity():
    from results.report.sections import flagged_models, shortcut_warnings

    models = {"cnn": {"at_threshold": {"specificity": float("nan")}, "shortcut": {}},
              "ann": {"at_threshold": {"specificity": None}, "shortcut": {}},
              "ok": {"at_threshold": {"specificity": 0.9}, "shortcut": {}}}
    assert flagged_models(models) == {"cnn", "ann"}
    text = shortcut_warnings(models)
    assert "the CNN's specificity is undefined" in text and "the ANN's" in text
    assert "OK" not in text


def test_verdict_says_which_test_supports_which_claim(report):
    from results.report.sections import verdict

    result, _ = report
    text = verdict(result)
    assert "beyond chance" not in text
    if result.get("mcnemar"):
        assert "McNemar's test asks another question" in text and "per image" in text


def test_size_table_names_the_runs_objective() -> None:
    """The report's "CV objective" cell is the run's objective, not val_auc beside it."""
    from results.report.sections import _cv

    cv = {"mean": {"val_auc": 0.994, "val_auc_geometric": 0.988},
          "std": {"val_auc": 0.001, "val_auc_geometric": 0.002}}
    assert _cv({"cv": cv, "objective": "val_auc_geometric"}).startswith("val_auc_geometric 0.988")
    assert _cv({"cv": cv}).startswith("val_auc 0.994")  # an export without "objective"


def test_test_dir_without_class_folders_names_test_dir(exported_run: Path, tmp_path: Path):
    from results.report.compare import compare_models

    empty = tmp_path / "films"
    empty.mkdir()
    (empty / "a.jpeg").write_bytes(b"x")
    with pytest.raises(ResultsError) as err:
        compare_models(exported_run, test_dir=empty, out_dir=tmp_path / "r", progress=False)
    msg = str(err.value)
    assert "no class folders" in msg and "--test-dir" in msg and "--data" not in msg


def test_a_one_family_report_is_not_titled_cnn_vs_ann() -> None:
    from results.report.sections import report_title

    assert report_title(["transfer"]) == "TRANSFER on held-out test images"
    assert report_title(["cnn", "ann"]) == "CNN vs ANN on held-out test images"
