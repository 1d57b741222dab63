"""Does a site's unlabelled score distribution look like the training site's? Pure functions.

At a fixed threshold, sensitivity and specificity depend only on the score distribution of each
class. A new site may hold more or fewer pneumonia films (a label shift): its scores are then
a different mixture of the same two class distributions, and the exported operating point still
holds. So the check fits, by a grid over the pneumonia share ``pi``, the mixture
``pi * F1 + (1 - pi) * F0`` of the reference class distributions (the out-of-fold scores) that
is closest to the local scores in Kolmogorov-Smirnov distance, and asks whether that distance is
larger than ``n`` films drawn from the reference itself would give (a parametric bootstrap at
the fitted share). A small p-value says the local scores are not any mix of the training site's
classes: the films differ in a way the model sees, and the operating point may have moved.

What it cannot see: a shift that keeps the local scores close to *some* mixture, for example
NORMAL films that all score higher, which reads as more pneumonia. Labelled films (`calibrate`)
are the only way to rule that out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SHARE_GRID = np.linspace(0.0, 1.0, 101)
N_REFERENCE_POINTS = 256


def _ecdf(sorted_values: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.searchsorted(sorted_values, points, side="right") / max(1, sorted_values.size)


class _Reference:
    """The two sorted reference classes and their CDFs at fixed quantile points (computed once:
    a check evaluates hundreds of bootstrap draws against the same reference)."""

    def __init__(self, ref0: np.ndarray, ref1: np.ndarray) -> None:
        self.ref0, self.ref1 = np.sort(ref0), np.sort(ref1)
        self.points = np.quantile(np.concatenate([self.ref0, self.ref1]),
                                  np.linspace(0.0, 1.0, N_REFERENCE_POINTS))
        self.f0, self.f1 = _ecdf(self.ref0, self.points), _ecdf(self.ref1, self.points)

    def distance(self, local: np.ndarray) -> tuple[float, float]:
        local = np.sort(local)
        # The KS supremum is reached at a local score or a reference point; both are evaluated.
        f_local = np.concatenate([_ecdf(local, local), _ecdf(local, self.points)])
        f0 = np.concatenate([_ecdf(self.ref0, local), self.f0])
        f1 = np.concatenate([_ecdf(self.ref1, local), self.f1])
        mix = SHARE_GRID[:, None] * f1[None, :] + (1.0 - SHARE_GRID[:, None]) * f0[None, :]
        dist = np.abs(mix - f_local[None, :]).max(axis=1)
        best = int(np.argmin(dist))
        return float(dist[best]), float(SHARE_GRID[best])


def mixture_distance(local: np.ndarray, ref0: np.ndarray, ref1: np.ndarray
                     ) -> tuple[float, float]:
    """The smallest KS distance between ``local`` and a mixture of the two reference classes.

    Args:
        local: the site's scores (any length >= 1).
        ref0: reference scores of the negative class.
        ref1: reference scores of the positive class.

    Returns:
        ``(distance, pneumonia share of the closest mixture)``; the distance is evaluated at
        the local scores and at ``N_REFERENCE_POINTS`` quantiles of the reference.
    """
    return _Reference(ref0, ref1).distance(np.asarray(local, dtype=float).ravel())


def null_distances(n: int, share: float, ref0: np.ndarray, ref1: np.ndarray, *,
                   n_boot: int = 200, seed: int = 0) -> np.ndarray:
    """Distances that ``n`` films drawn from the reference mixture at ``share`` give."""
    ref = _Reference(ref0, ref1)
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    for b in range(n_boot):
        n1 = rng.binomial(n, share)
        draw = np.concatenate([rng.choice(ref.ref1, n1), rng.choice(ref.ref0, n - n1)])
        out[b] = ref.distance(draw)[0]
    return out


def check_scores(local: np.ndarray, ref_scores: np.ndarray, ref_y: np.ndarray, *,
                 threshold: float | None = None, alpha: float = 0.05, n_boot: int = 200,
                 seed: int = 0) -> dict[str, Any]:
    """The unlabelled check: is ``local`` a mixture of the reference's class distributions?

    Args:
        local: the site's scores (same kind as the reference: see ``results/site/reference.py``).
        ref_scores: the reference (out-of-fold) scores.
        ref_y: their 0/1 labels.
        threshold: the exported threshold, to report the share of local films called positive
            next to the share the fitted mixture predicts.
        alpha: the p-value under which the check warns.
        n_boot: bootstrap draws for the p-value.
        seed: the bootstrap's seed.

    Returns:
        ``{"n", "distance", "pneumonia_share", "p_value", "alpha", "critical_distance" (the
        null's 1 - alpha quantile), "shifted" (p_value < alpha), "called_positive",
        "expected_called_positive"}``.
    """
    local = np.asarray(local, dtype=float).ravel()
    ref_scores = np.asarray(ref_scores, dtype=float).ravel()
    ref_y = np.asarray(ref_y).astype(int).ravel()
    if local.size == 0:
        raise ValueError("no local scores to check")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1); got {alpha}")
    ref0, ref1 = np.sort(ref_scores[ref_y == 0]), np.sort(ref_scores[ref_y == 1])
    if ref0.size == 0 or ref1.size == 0:
        raise ValueError("the reference needs scores of both classes")
    distance, share = mixture_distance(local, ref0, ref1)
    null = null_distances(local.size, share, ref0, ref1, n_boot=n_boot, seed=seed)
    p = float((1 + np.sum(null >= distance - 1e-12)) / (n_boot + 1))
    out = {"n": int(local.size), "distance": distance, "pneumonia_share": share,
           "p_value": p, "alpha": float(alpha),
           "critical_distance": float(np.quantile(null, 1.0 - alpha)),
           "shifted": bool(p < alpha), "called_positive": None,
           "expected_called_positive": None}
    if threshold is not None:
        out["called_positive"] = float(np.mean(local >= threshold))
        out["expected_called_positive"] = float(share * np.mean(ref1 >= threshold)
                                                + (1 - share) * np.mean(ref0 >= threshold))
    return out


def probe_shift(shifted_scores: np.ndarray, ref_scores: np.ndarray, ref_y: np.ndarray,
                threshold: float) -> dict[str, float]:
    """How far a probe's shifted copy of the reference moves: distance and operating point.

    The reference's labels are known, so the sensitivity and specificity at the exported
    threshold on the shifted copy show what a shift of that distance does to the calls.
    """
    ref_scores = np.asarray(ref_scores, dtype=float).ravel()
    ref_y = np.asarray(ref_y).astype(int).ravel()
    s = np.asarray(shifted_scores, dtype=float).ravel()
    ref0, ref1 = np.sort(ref_scores[ref_y == 0]), np.sort(ref_scores[ref_y == 1])
    distance, share = mixture_distance(s, ref0, ref1)
    pred = s >= threshold
    return {"distance": distance, "pneumonia_share": share,
            "sensitivity": float(np.mean(pred[ref_y == 1])),
            "specificity": float(np.mean(~pred[ref_y == 0]))}


def verdict(result: dict[str, Any]) -> str:
    """One plain paragraph: can the exported operating point be expected to hold?"""
    if result["shifted"]:
        return (f"The scores of these {result['n']} films do not look like the training site's "
                f"(distance {result['distance']:.3f} to the closest mix of its classes, "
                f"p = {result['p_value']:.3f} < {result['alpha']}): the films differ in a way "
                "the model sees, and the exported operating point may not hold here. Label "
                "films of both classes and run `run_search.py calibrate`.")
    return (f"The scores of these {result['n']} films are consistent with the training site's "
            f"(distance {result['distance']:.3f}, p = {result['p_value']:.3f} >= "
            f"{result['alpha']}): no sign that the exported operating point moved. The films "
            f"score as if {result['pneumonia_share']:.0%} of them had pneumonia: if you know "
            "the share at your site is clearly lower, NORMAL films score higher here, a shift "
            "this check cannot tell from more pneumonia, and the exported threshold will lose "
            "specificity. Before clinical use, label films and run `run_search.py "
            "calibrate`.")
