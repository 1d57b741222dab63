"""A site's own operating point, with a guaranteed sensitivity: pure functions over scores.

The rule (issue 33): among the thresholds whose one-sided Clopper-Pearson lower bound on
sensitivity, from the site's labelled pneumonia films, is still >= the floor, take the highest
one (the one that calls the fewest films positive, hence the best specificity; every lower
threshold meets the floor too). With ``m`` the most misses the bound allows among ``n``
pneumonia films, that threshold sits at the ``(m + 1)``-th lowest pneumonia score. Its true
sensitivity is >= the floor with probability >= the confidence over the draw of the films:
the score distribution function at the ``(m + 1)``-th order statistic is Beta(m + 1, n - m)
distributed, and the Clopper-Pearson bound is exactly that Beta quantile. The guarantee needs
the labelled films to be a random sample of the site's pneumonia films; the NORMAL films only
measure specificity (they do not choose the threshold, so its interval is honest).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from results.site.bounds import interval, lower_bound, min_positives
from results.thresholds import operating_point

REL_MARGIN = 1e-5


@lru_cache(maxsize=None)
def allowed_misses(n: int, floor: float, confidence: float) -> int | None:
    """The most pneumonia films of ``n`` a threshold may miss with its lower bound >= ``floor``.

    Returns:
        ``m`` in ``[0, n - 1]``, or None when even finding all ``n`` does not meet the floor.
    """
    best = None
    for misses in range(n):  # the bound falls as misses grow: stop at the first failure
        if lower_bound(n - misses, n, confidence) >= floor:
            best = misses
        else:
            break
    return best


def _check_inputs(y: np.ndarray, scores: np.ndarray, floor: float,
                  confidence: float) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).astype(int).ravel()
    s = np.asarray(scores, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} vs {s.size}")
    if not 0.0 < floor < 1.0:
        raise ValueError(f"the sensitivity floor must be in (0, 1); got {floor}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"the confidence must be in (0, 1); got {confidence}")
    return y, s


def guaranteed_threshold(y: np.ndarray, scores: np.ndarray, floor: float = 0.90,
                         confidence: float = 0.95) -> float | None:
    """The highest threshold whose lower confidence bound on sensitivity meets ``floor``.

    Args:
        y: 0/1 labels of the site's films (1 = pneumonia).
        scores: the export's probabilities of pneumonia for them.
        floor: the sensitivity the bound must reach, e.g. 0.90.
        confidence: one-sided level of the bound, e.g. 0.95.

    Returns:
        The threshold (a relative ``REL_MARGIN`` below the qualifying pneumonia score), or None
        when the pneumonia films are too few for any threshold to meet the floor
        (:func:`min_positives`).
    """
    y, s = _check_inputs(y, scores, floor, confidence)
    pos = np.sort(s[y == 1])
    misses = allowed_misses(int(pos.size), float(floor), float(confidence))
    if misses is None:
        return None
    # Just below the qualifying pneumonia score, by a margin far above float32 round-off (so a
    # reloaded model makes the same calls), and placed from the pneumonia films alone: the
    # NORMAL films never move the threshold, so their specificity interval stays honest.
    return float(pos[misses] * (1.0 - REL_MARGIN))


def assess(y: np.ndarray, scores: np.ndarray, threshold: float,
           confidence: float = 0.95) -> dict[str, Any]:
    """The operating point at ``threshold`` with exact intervals.

    Returns:
        :func:`results.thresholds.operating_point`'s fields plus ``sensitivity_lower_bound``
        (one-sided at ``confidence``), ``sensitivity_interval`` and ``specificity_interval``
        (two-sided at ``confidence``), ``n_positive`` and ``n_negative``.
    """
    point = operating_point(y, scores, threshold)
    n_pos, n_neg = point["tp"] + point["fn"], point["tn"] + point["fp"]
    point.update(
        n_positive=n_pos, n_negative=n_neg,
        sensitivity_lower_bound=lower_bound(point["tp"], n_pos, confidence) if n_pos else None,
        sensitivity_interval=list(interval(point["tp"], n_pos, confidence)) if n_pos else None,
        specificity_interval=list(interval(point["tn"], n_neg, confidence)) if n_neg else None)
    return point


def calibrate_scores(y: np.ndarray, scores: np.ndarray, *, floor: float = 0.90,
                     confidence: float = 0.95,
                     exported_threshold: float | None = None) -> dict[str, Any]:
    """Everything ``calibrate`` reports, from the site's labels and the export's scores.

    Returns:
        ``{"feasible", "threshold" (None when not feasible), "rule", "floor", "confidence",
        "n_positive", "n_negative", "at_threshold" (:func:`assess`, or None),
        "min_positives", "more_positives_needed", "exported" (:func:`assess` at the exported
        threshold, or None)}``.
    """
    y, s = _check_inputs(y, scores, floor, confidence)
    n_pos, n_neg = int(y.sum()), int(y.size - y.sum())
    t = guaranteed_threshold(y, s, floor, confidence)
    need = min_positives(floor, confidence)
    return {
        "feasible": t is not None, "threshold": t,
        "rule": (f"highest threshold whose one-sided {confidence:.0%} Clopper-Pearson lower "
                 f"bound on sensitivity, from the site's {n_pos} pneumonia films, is >= "
                 f"{floor}"),
        "floor": float(floor), "confidence": float(confidence),
        "n_positive": n_pos, "n_negative": n_neg,
        "at_threshold": assess(y, s, t, confidence) if t is not None else None,
        "min_positives": need, "more_positives_needed": max(0, need - n_pos),
        "exported": (assess(y, s, exported_threshold, confidence)
                     if exported_threshold is not None else None),
    }
