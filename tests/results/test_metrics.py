"""Every metric of metrics.json checked against scikit-learn on constructed predictions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from results.metrics import SCALAR_METRICS, curves, evaluate, scalar_metrics


@pytest.fixture
def preds():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    p = np.clip(0.35 * y + rng.uniform(0, 0.65, 300), 0, 1)
    return y, p


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.62])
def test_scalar_metrics_match_sklearn(preds, threshold):
    y, p = preds
    pred = (p >= threshold).astype(int)
    m = scalar_metrics(y, p, threshold)
    assert set(m) == set(SCALAR_METRICS)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred).ravel()
    assert m["sensitivity"] == pytest.approx(skm.recall_score(y, pred))
    assert m["specificity"] == pytest.approx(skm.recall_score(y, pred, pos_label=0))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert m["npv"] == pytest.approx(skm.precision_score(y, pred, pos_label=0))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert m["pr_auc"] == pytest.approx(skm.average_precision_score(y, p))
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y, p))


def test_evaluate_confusion_and_per_class_match_sklearn(preds):
    y, p = preds
    rec = evaluate(y, p, 0.45, ["NORMAL", "PNEUMONIA"])
    for t, key in ((0.45, "at_threshold"), (0.5, "at_0.5")):
        pred = (p >= t).astype(int)
        c = rec["confusion_" + key]
        tn, fp, fn, tp = skm.confusion_matrix(y, pred).ravel()
        assert (c["tn"], c["fp"], c["fn"], c["tp"]) == (tn, fp, fn, tp)
        prec, recall, f1, sup = skm.precision_recall_fscore_support(y, pred)
        for i, row in enumerate(rec["per_class_" + key]):
            assert row["class"] == ["NORMAL", "PNEUMONIA"][i]
            assert row["precision"] == pytest.approx(prec[i])
            assert row["recall"] == pytest.approx(recall[i])
            assert row["f1"] == pytest.approx(f1[i])
            assert row["support"] == sup[i]
    assert rec["n"] == 300 and rec["n_positive"] == int(y.sum())


def test_curves_match_sklearn(preds):
    y, p = preds
    c = curves(y, p)
    fpr, tpr, _ = skm.roc_curve(y, p)
    assert np.allclose(c["roc"]["fpr"], fpr) and np.allclose(c["roc"]["tpr"], tpr)
    assert np.trapezoid(c["roc"]["tpr"], c["roc"]["fpr"]) == pytest.approx(skm.roc_auc_score(y, p))
    assert len(c["calibration"]["mean_predicted"]) == len(c["calibration"]["fraction_positive"])


def test_one_class_gives_nan_ranking_metrics():
    m = scalar_metrics(np.ones(4), np.array([0.2, 0.6, 0.7, 0.9]), 0.5)
    assert np.isnan(m["roc_auc"]) and np.isnan(m["specificity"])
    assert m["sensitivity"] == 0.75
