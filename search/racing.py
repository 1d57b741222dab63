"""Racing: stop a trial after a fold that shows it cannot plausibly beat the best trial.

The rule (``--no-racing`` turns it off). After fold k of a trial (not the last fold), compare
its objective on fold k with the best completed trial's score on the same fold at the same
epoch budget (the same Hyperband round length; for random and Bayesian search every trial
has the same budget). The trial is pruned when it is worse by more than the margin:

* objectives on a 0..1 scale (AUC, accuracy, the probes): more than ``MARGIN`` = 0.05 below;
* ``val_loss``: more than ``LOSS_MARGIN`` = 25% above.

Why this rule. Comparing the same fold removes the largest source of noise, how hard a fold's
patients are (fold scores of one configuration spread by 0.01-0.02 AUC on the shared data,
benchmarks/RESULTS.md). What remains is one model's training noise, well under 0.05 AUC for the
models that learn; a fold 0.05 below the best trial's same fold means the trial's mean would
need every other fold to beat the best by as much. The case it is built for is common: in the
last reference CNN search about 40% of trials ended near val_auc 0.5 after all three folds,
where racing stops them after the first. The comparison is per budget, so a 4-epoch first
Hyperband round is never judged against a 10-epoch promoted one.

A pruned trial keeps its finished folds (``cv.json`` status ``PRUNED``); it reports its partial
fold means to the oracle, with ``cxr_pruned`` = 1, so Bayesian optimisation learns from its
poor score, but it is never the best trial, never promoted, never exported and never counts as
a failure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from search.run_folder import read_json

MARGIN = 0.05
LOSS_MARGIN = 0.25


def budget_of(cv: dict[str, Any]) -> int | None:
    """A trial's epoch budget per fold: its Hyperband round's epochs, or None (one budget)."""
    return (cv.get("hyperband") or {}).get("epochs")


def reference(records: Iterable[dict[str, Any]], *, objective: str, direction: str,
              budget: int | None) -> dict[str, Any] | None:
    """The best completed trial at ``budget``: ``{"trial_id", "folds": {fold: score}}``.

    Args:
        records: ``cv.json`` records of the family's trials.
        objective: The objective name.
        direction: ``max`` or ``min``.
        budget: The racing trial's :func:`budget_of`.
    """
    best, best_mean = None, None
    for cv in records:
        mean = (cv.get("mean") or {}).get(objective)
        if cv.get("status") != "COMPLETED" or mean is None or budget_of(cv) != budget:
            continue
        if best_mean is None or (mean > best_mean if direction == "max" else mean < best_mean):
            best, best_mean = cv, mean
    if best is None:
        return None
    return {"trial_id": best["trial_id"],
            "folds": {int(f["fold"]): f[objective] for f in best.get("folds", [])
                      if f.get(objective) is not None}}


def prune_reason(score: float, fold: int, ref: dict[str, Any] | None, *, objective: str,
                 direction: str) -> str | None:
    """Why a trial whose fold ``fold`` scored ``score`` is pruned, or None to go on (also when
    ``ref`` is None or empty: nothing to race against)."""
    if not ref or fold not in ref["folds"] or score is None:
        return None
    target = ref["folds"][fold]
    if direction == "max":
        if score >= target - MARGIN:
            return None
        return (f"pruned after fold {fold + 1}: {objective} {score:.4f} is more than {MARGIN} "
                f"below the best trial {ref['trial_id']}'s {target:.4f} on that fold")
    if score <= target * (1 + LOSS_MARGIN):
        return None
    return (f"pruned after fold {fold + 1}: {objective} {score:.4f} is more than "
            f"{LOSS_MARGIN:.0%} above the best trial {ref['trial_id']}'s {target:.4f} on that fold")


def family_records(family_dir: Path) -> list[dict[str, Any]]:
    """Every trial's ``cv.json`` in a family folder (workers' trials included)."""
    return [r for r in (read_json(p) for p in sorted(Path(family_dir).glob("trial_*/cv.json")))
            if r]
