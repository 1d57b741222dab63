"""Decision thresholds for a binary classifier, chosen on validation data (never on test).

The convention everywhere in this project: an image is called positive when its probability is
``>= threshold``. A threshold is placed midway between two distinct validation scores rather than
on a score itself, so a model reloaded from disk (float round-off) makes the same calls.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from results.errors import ResultsError


def _check_binary(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(int).ravel()
    s = np.asarray(scores, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape[0]} vs {s.shape[0]}")
    if not np.all(np.isin(y, (0, 1))):
        raise ResultsError("threshold selection needs two classes (labels 0 and 1); got labels "
                           f"{sorted(set(y.tolist()))}.")
    if y.sum() == 0 or y.sum() == y.size:
        raise ResultsError(
            "the validation slice holds only one class "
            f"({int(y.sum())} positive of {y.size}), so sensitivity and specificity are undefined; "
            "use more data or a larger validation slice.")
    return y, s


def operating_point(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Sensitivity, specificity, precision and counts at one threshold.

    Args:
        y_true: 0/1 labels, 1 = positive class.
        scores: probabilities of the positive class.
        threshold: positive when ``score >= threshold``.

    Returns:
        ``{"threshold", "sensitivity", "specificity", "precision", "tp", "fp", "tn", "fn"}``;
        precision is 0.0 when nothing is called positive.
    """
    y = np.asarray(y_true).astype(int).ravel()
    pred = np.asarray(scores, dtype=float).ravel() >= threshold
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    tn = int(np.sum(~pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    return {
        "threshold": float(threshold),
        "sensitivity": tp / (tp + fn) if tp + fn else float("nan"),
        "specificity": tn / (tn + fp) if tn + fp else float("nan"),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "tp": tp, "fp": fp, "tn": tn, "fn": fn,
    }


def _candidates(scores: np.ndarray) -> np.ndarray:
    """Thresholds between consecutive distinct scores, highest first, plus both ends.

    Above the top score nothing is positive; below the lowest score everything is.
    """
    distinct = np.unique(scores)[::-1]  # descending
    mids = (distinct[:-1] + distinct[1:]) / 2.0
    top = np.nextafter(distinct[0], np.inf) if distinct[0] < 1.0 else 1.0 + 1e-9
    return np.concatenate([[top], mids, [min(0.0, distinct[-1])]])


def threshold_for_sensitivity(y_true: np.ndarray, scores: np.ndarray,
                              target: float = 0.95) -> float:
    """The highest threshold whose sensitivity reaches ``target``.

    The highest such threshold gives the best specificity among those meeting the target,
    because sensitivity and the false-positive rate both only grow as the threshold falls.

    Args:
        y_true: 0/1 labels.
        scores: positive-class probabilities.
        target: the sensitivity to reach, in (0, 1].

    Returns:
        The threshold (a midpoint between two validation scores, or 0.0 when only calling
        everything positive reaches the target).
    """
    if not 0.0 < target <= 1.0:
        raise ResultsError(f"--target-sensitivity must be in (0, 1]; got {target}.")
    y, s = _check_binary(y_true, scores)
    n_pos = y.sum()
    for t in _candidates(s):
        if np.sum((s >= t) & (y == 1)) / n_pos >= target - 1e-12:
            return float(t)
    return 0.0  # unreachable: the last candidate calls everything positive


def youden_threshold(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The threshold maximising Youden's J = sensitivity + specificity - 1 (highest on ties)."""
    y, s = _check_binary(y_true, scores)
    n_pos, n_neg = y.sum(), y.size - y.sum()
    best_t, best_j = 0.5, -np.inf
    for t in _candidates(s):
        pred = s >= t
        j = np.sum(pred & (y == 1)) / n_pos - np.sum(pred & (y == 0)) / n_neg
        if j > best_j + 1e-12:
            best_t, best_j = float(t), j
    return best_t


def select_thresholds(y_true: np.ndarray, scores: np.ndarray,
                      target_sensitivity: float = 0.95) -> dict[str, Any]:
    """The content of an export's ``threshold.json``.

    Returns:
        ``{"threshold": <the one predict uses: the target-sensitivity one>, "rule": ...,
        "target_sensitivity", "sensitivity_target": {...operating point...},
        "youden": {...}, "default_0.5": {...}, "n_validation", "n_validation_positive"}``.
    """
    y, s = _check_binary(y_true, scores)
    t_sens = threshold_for_sensitivity(y, s, target_sensitivity)
    t_you = youden_threshold(y, s)
    return {
        "threshold": t_sens,
        "rule": f"highest threshold reaching sensitivity >= {target_sensitivity} "
                "on the validation slice",
        "target_sensitivity": float(target_sensitivity),
        "sensitivity_target": operating_point(y, s, t_sens),
        "youden": operating_point(y, s, t_you),
        "default_0.5": operating_point(y, s, 0.5),
        "n_validation": int(y.size),
        "n_validation_positive": int(y.sum()),
    }
