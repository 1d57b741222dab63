"""Uncertainty and significance: patient-level bootstrap intervals and McNemar's test.

Images of one patient are correlated, so the bootstrap resamples patients (groups) with
replacement and keeps each patient's images together; resampling images would understate the
uncertainty. The same resamples are used for every model, which makes the intervals of the
paired differences (CNN minus ANN) meaningful.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from scipy import stats as sps

# Below this many discordant pairs the chi-square approximation is poor; use the exact test.
EXACT_MCNEMAR_BELOW = 25


def mcnemar(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict[str, Any]:
    """McNemar's test of two classifiers' paired correctness on the same images.

    Args:
        y_true: labels.
        pred_a: predicted labels of model A.
        pred_b: predicted labels of model B.

    Returns:
        ``{"a_only_correct" (b), "b_only_correct" (c), "n_discordant", "method", "statistic",
        "p_value"}``; exact two-sided binomial test when ``b + c < 25``, otherwise chi-square with
        continuity correction ``(|b - c| - 1)^2 / (b + c)`` on 1 degree of freedom.
    """
    y = np.asarray(y_true).ravel()
    ok_a = np.asarray(pred_a).ravel() == y
    ok_b = np.asarray(pred_b).ravel() == y
    b = int(np.sum(ok_a & ~ok_b))
    c = int(np.sum(~ok_a & ok_b))
    n = b + c
    if n == 0:
        return {"a_only_correct": b, "b_only_correct": c, "n_discordant": 0,
                "method": "none (no discordant pairs)", "statistic": 0.0, "p_value": 1.0}
    if n < EXACT_MCNEMAR_BELOW:
        p = float(min(1.0, 2.0 * sps.binom.cdf(min(b, c), n, 0.5)))
        return {"a_only_correct": b, "b_only_correct": c, "n_discordant": n,
                "method": "exact binomial", "statistic": float(min(b, c)), "p_value": p}
    stat = (abs(b - c) - 1.0) ** 2 / n
    return {"a_only_correct": b, "b_only_correct": c, "n_discordant": n,
            "method": "chi-square with continuity correction", "statistic": float(stat),
            "p_value": float(sps.chi2.sf(stat, 1))}


def resample_indices(groups: np.ndarray | None, n: int, n_boot: int,
                     seed: int) -> list[np.ndarray]:
    """Index arrays of ``n_boot`` bootstrap resamples, drawing whole groups when given."""
    rng = np.random.default_rng(seed)
    if groups is None:
        return [rng.integers(0, n, size=n) for _ in range(n_boot)]
    uniq, inverse = np.unique(np.asarray(groups), return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(uniq.size)]
    out = []
    for _ in range(n_boot):
        picks = rng.integers(0, uniq.size, size=uniq.size)
        out.append(np.concatenate([members[g] for g in picks]))
    return out


def bootstrap(y_true: np.ndarray, probs: Mapping[str, np.ndarray],
              metric_fn: Callable[[np.ndarray, np.ndarray, str], Mapping[str, float]],
              *, groups: np.ndarray | None = None, n_boot: int = 1000, seed: int = 0,
              alpha: float = 0.05) -> dict[str, Any]:
    """Percentile bootstrap intervals of every metric of every model, and of paired differences.

    Args:
        y_true: labels (N,).
        probs: model name -> probabilities (N,).
        metric_fn: ``(y, prob, model_name) -> {metric: value}``; NaN values (e.g. AUC on a
            resample with one class) are left out of that metric's interval.
        groups: patient ids (N,); resample patients when given, images otherwise.
        n_boot: number of resamples.
        seed: random seed (intervals are reproducible).
        alpha: 0.05 gives 95% intervals.

    Returns:
        ``{"n_boot", "unit": "patient"|"image", "level", "ci": {model: {metric: [lo, hi]}},
        "diff_ci": {"A-B": {metric: [lo, hi]}}}`` (diff only when there are two models).
    """
    y = np.asarray(y_true).ravel()
    names = list(probs)
    samples: dict[str, dict[str, list[float]]] = {m: {} for m in names}
    for idx in resample_indices(groups, y.size, n_boot, seed):
        for m in names:
            for k, v in metric_fn(y[idx], np.asarray(probs[m]).ravel()[idx], m).items():
                samples[m].setdefault(k, []).append(float(v))

    def interval(values: list[float] | np.ndarray) -> list[float]:
        arr = np.asarray(values, dtype=float)
        arr = arr[~np.isnan(arr)]
        if arr.size == 0:
            return [float("nan"), float("nan")]
        return [float(np.quantile(arr, alpha / 2)), float(np.quantile(arr, 1 - alpha / 2))]

    result: dict[str, Any] = {
        "n_boot": n_boot, "unit": "patient" if groups is not None else "image",
        "level": 1 - alpha,
        "ci": {m: {k: interval(v) for k, v in samples[m].items()} for m in names},
    }
    if len(names) == 2:
        a, b = names
        result["diff_ci"] = {f"{a}-{b}": {
            k: interval(np.asarray(samples[a][k]) - np.asarray(samples[b][k]))
            for k in samples[a] if k in samples[b]}}
    return result
