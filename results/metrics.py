"""Test-set metrics of a binary classifier: the numbers a clinician reads, sensitivity first.

Pure functions of labels and probabilities (no model, no IO). Every number here is checked against
scikit-learn in ``tests/results/test_metrics.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

# Scalar metrics in metrics.json / metrics.csv, in report order; the bootstrap covers these too.
SCALAR_METRICS = ("sensitivity", "specificity", "accuracy", "balanced_accuracy", "precision",
                  "npv", "f1", "roc_auc", "pr_auc", "brier")


def _safe_div(a: float, b: float) -> float:
    return float(a) / float(b) if b else float("nan")


def confusion(y_true: np.ndarray, prob: np.ndarray, threshold: float) -> dict[str, int]:
    """Counts at one threshold (positive when ``prob >= threshold``)."""
    y = np.asarray(y_true).astype(int).ravel()
    pred = np.asarray(prob, dtype=float).ravel() >= threshold
    return {"tn": int(np.sum(~pred & (y == 0))), "fp": int(np.sum(pred & (y == 0))),
            "fn": int(np.sum(~pred & (y == 1))), "tp": int(np.sum(pred & (y == 1)))}


def scalar_metrics(y_true: np.ndarray, prob: np.ndarray, threshold: float) -> dict[str, float]:
    """Threshold and ranking metrics in one dict (keys = :data:`SCALAR_METRICS`).

    Ranking metrics (ROC-AUC, PR-AUC = average precision) are NaN when only one class is present,
    which happens inside bootstrap resamples of tiny test sets.
    """
    y = np.asarray(y_true).astype(int).ravel()
    p = np.asarray(prob, dtype=float).ravel()
    c = confusion(y, p, threshold)
    tp, fp, tn, fn = c["tp"], c["fp"], c["tn"], c["fn"]
    sens = _safe_div(tp, tp + fn)
    spec = _safe_div(tn, tn + fp)
    prec = _safe_div(tp, tp + fp)
    two_classes = 0 < y.sum() < y.size
    return {
        "sensitivity": sens,
        "specificity": spec,
        "accuracy": _safe_div(tp + tn, y.size),
        "balanced_accuracy": (sens + spec) / 2.0,
        "precision": prec,
        "npv": _safe_div(tn, tn + fn),
        "f1": _safe_div(2 * tp, 2 * tp + fp + fn),
        "roc_auc": float(skm.roc_auc_score(y, p)) if two_classes else float("nan"),
        "pr_auc": float(skm.average_precision_score(y, p)) if two_classes else float("nan"),
        "brier": float(np.mean((p - y) ** 2)),
    }


def per_class_report(y_true: np.ndarray, prob: np.ndarray, threshold: float,
                     class_names: list[str]) -> list[dict[str, Any]]:
    """Precision, recall, F1 and support for each class (index = label)."""
    y = np.asarray(y_true).astype(int).ravel()
    pred = (np.asarray(prob, dtype=float).ravel() >= threshold).astype(int)
    prec, rec, f1, sup = skm.precision_recall_fscore_support(
        y, pred, labels=[0, 1], zero_division=0)
    return [{"class": class_names[i], "precision": float(prec[i]), "recall": float(rec[i]),
             "f1": float(f1[i]), "support": int(sup[i])} for i in range(2)]


def curves(y_true: np.ndarray, prob: np.ndarray, n_bins: int = 10) -> dict[str, dict[str, list]]:
    """ROC, precision-recall and calibration curves as plain lists (for JSON and plotting)."""
    y = np.asarray(y_true).astype(int).ravel()
    p = np.asarray(prob, dtype=float).ravel()
    out: dict[str, dict[str, list]] = {}
    if 0 < y.sum() < y.size:
        fpr, tpr, _ = skm.roc_curve(y, p)
        precision, recall, _ = skm.precision_recall_curve(y, p)
        out["roc"] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
        out["pr"] = {"recall": recall.tolist(), "precision": precision.tolist()}
    frac_pos, mean_pred = calibration_curve(y, p, n_bins=n_bins, strategy="uniform")
    out["calibration"] = {"mean_predicted": mean_pred.tolist(), "fraction_positive": frac_pos.tolist()}
    return out


def evaluate(y_true: np.ndarray, prob: np.ndarray, threshold: float,
             class_names: list[str]) -> dict[str, Any]:
    """Everything metrics.json holds for one model, at its exported threshold and at 0.5."""
    return {
        "threshold": float(threshold),
        "n": int(np.asarray(y_true).size),
        "n_positive": int(np.asarray(y_true).astype(int).sum()),
        "at_threshold": scalar_metrics(y_true, prob, threshold),
        "at_0.5": scalar_metrics(y_true, prob, 0.5),
        "confusion_at_threshold": confusion(y_true, prob, threshold),
        "confusion_at_0.5": confusion(y_true, prob, 0.5),
        "per_class_at_threshold": per_class_report(y_true, prob, threshold, class_names),
        "per_class_at_0.5": per_class_report(y_true, prob, 0.5, class_names),
    }
