"""Reading fold records (``fold<k>.json``, the ``folds`` of ``cv.json``): where the best epoch sits
in a fold's history, and the per-metric mean and standard deviation over folds.

The search writes cv.json with these and ``results/`` rebuilds unfinished trials with them, so
both sides agree. NumPy only: ``results.leaderboard`` imports this without Keras.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation (ddof=0, numpy's default) of ``values``."""
    return float(np.mean(values)), float(np.std(values))


def fold_mean_std(folds: Sequence[Mapping[str, Any]]) -> tuple[dict[str, float], dict[str, float]]:
    """Per-metric means and standard deviations over folds, keys sorted.

    Each metric is averaged over the folds that have it (a value that is not None): a probe can
    be absent from one fold (too few images of an acquisition batch) or from folds finished
    before probes existed.

    Args:
        folds: one ``{metric: value}`` mapping per fold.
    """
    mean, std = {}, {}
    for key in sorted({k for f in folds for k in f}):
        vals = [f[key] for f in folds if f.get(key) is not None]
        if vals:
            mean[key], std[key] = mean_std(vals)
    return mean, std


def best_epoch_index(fold: Mapping[str, Any]) -> int | None:
    """Index of the restored best epoch in the fold's ``history`` (None without ``best_epoch``).

    ``best_epoch`` counts from 1 across Hyperband rounds, carried epochs included
    (search/fit/fold_fit.py), and the history starts after ``initial_epoch``. The index can fall
    outside the history (the round kept its carried weights): callers check the range.
    """
    best = fold.get("best_epoch")
    return None if best is None else int(best) - int(fold.get("initial_epoch") or 0) - 1


# The metrics a stopped trial reports to the oracle (search.tuners.oracle_base reads them): pruned
# by
# the ladder (a rung's score, never the best), censored by a cost rule (no score to learn from).
PRUNED_METRIC = "cxr_pruned"
CENSORED_METRIC = "cxr_censored"
# A trial that waits at a ladder rung (search.schedule.ladder, "Suspension").
SUSPENDED_METRIC = "cxr_suspended"
# Each ladder rung the trial reached, as ``cxr_rung<i>`` (TPE's intermediate values).
RUNG_METRIC_PREFIX = "cxr_rung"


def oracle_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    """The metrics a trial reports to the oracle, from its ``cv.json`` record.

    The fold means; a trial stopped inside its first fold (``stopped_in_fold``) has none, so
    the partial fold's metrics, measured where it stopped, fill what the means lack, and the
    oracle (Bayesian, TPE) still learns from it. A ``PRUNED`` trial adds ``cxr_pruned`` = 1
    (:data:`PRUNED_METRIC`): never the best, never promoted; one stopped by a cost rule
    (``censored`` in its record) adds ``cxr_censored`` = 1 (:data:`CENSORED_METRIC`) instead,
    so no tuner takes its partial score for quality. Every ladder rung it reached is reported
    as ``cxr_rung<i>`` (:data:`RUNG_METRIC_PREFIX`). A ``SUSPENDED`` trial adds
    ``cxr_suspended`` = 1 (:data:`SUSPENDED_METRIC`): its score is its rung's, like a pruned
    trial's, until the oracle resumes it.
    """
    # A NaN (an AUC of one class, a diverged partial fold) would poison the Gaussian process.
    metrics = {k: float(v) for k, v in (record.get("mean") or {}).items()
               if v is not None and np.isfinite(v)}
    partial = (record.get("stopped_in_fold") or {}).get("best") or {}
    for key, value in partial.items():
        if value is not None and np.isfinite(value):
            metrics.setdefault(key, float(value))
    if record.get("status") == "PRUNED":
        metrics[CENSORED_METRIC if record.get("censored") else PRUNED_METRIC] = 1.0
    if record.get("status") == "SUSPENDED":
        metrics[SUSPENDED_METRIC] = 1.0
    for entry in (record.get("ladder") or {}).get("rungs") or []:
        value = entry.get("value")
        if value is not None and np.isfinite(value):
            metrics[f"{RUNG_METRIC_PREFIX}{int(entry['rung'])}"] = float(value)
    return metrics
