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
models that learn; a fold 0.05 below the best trial's same fold means that, to match the best
trial's mean over k folds, the trial's other k - 1 folds would each have to beat the best's by
0.05 / (k - 1) on average (half the margin with 3 folds), while fold scores of one
configuration rarely move by more than 0.02. The case it is built for is common: in the
last reference CNN search about 40% of trials ended near val_auc 0.5 after all three folds,
where racing stops them after the first. The comparison is per budget, so a 4-epoch first
Hyperband round is never judged against a 10-epoch promoted one.

Inside Hyperband. A round that promotes (every round but the last) does not look for the best
trial but for its top third, the configurations it will continue; the slow learners it exists
for are often not the leader after a short round but are in its top third. So in such a round
a trial races against the top-third boundary of the completed trials of the same round length
on each fold (the score at rank ``ceil(n / 3)``: the share Hyperband promotes, a third,
counted over every completed trial of that round length, which is slightly more lenient than
the planned promotion slots of one bracket), not against the leader: it is pruned only when it cannot plausibly be promoted. The last round,
whose trials compete for the best, races against the best as the other tuners do.

A pruned trial keeps its finished folds (``cv.json`` status ``PRUNED``); it reports its partial
fold means to the oracle, with ``cxr_pruned`` = 1, so Bayesian optimisation learns from its
poor score, but it is never the best trial, never promoted, never exported and never counts as
a failure.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

from search.run_folder import read_json

MARGIN = 0.05
LOSS_MARGIN = 0.25


def budget_of(cv: dict[str, Any]) -> tuple[int, int] | None:
    """A trial's epoch budget per fold: its Hyperband round as ``(epochs, initial_epoch)``
    (``tuner/epochs``, ``tuner/initial_epoch``), or None for the tuners with one budget.

    Both ends, because a fresh single round at ``--max-epochs`` (the plan's fallback when few
    trials are left) and a bracket's continued last round end at the same epoch, yet one
    starts from scratch and the other from carried weights.
    """
    hb = cv.get("hyperband") or {}
    if hb.get("epochs") is None:
        return None
    return int(hb["epochs"]), int(hb.get("initial_epoch") or 0)


def reference(records: Iterable[dict[str, Any]], *, objective: str, direction: str,
              budget: int | None, promoting: bool = False) -> dict[str, Any] | None:
    """What a trial at ``budget`` races against: ``{"trial_id", "folds": {fold: score}}``.

    Args:
        records: ``cv.json`` records of the family's trials.
        objective: The objective name.
        direction: ``max`` or ``min``.
        budget: The racing trial's :func:`budget_of`.
        promoting: The trial is in a Hyperband round that promotes its top third: race against
            the top-third boundary of the completed trials of that round length, fold by fold
            (``trial_id`` then describes it), instead of the best trial.
    """
    peers = [cv for cv in records
             if cv.get("status") == "COMPLETED" and budget_of(cv) == budget
             and (cv.get("mean") or {}).get(objective) is not None]
    if not peers:
        return None
    if promoting:
        rank = max(1, math.ceil(len(peers) / 3))
        folds: dict[int, list[float]] = {}
        for cv in peers:
            for f in cv.get("folds", []):
                if f.get(objective) is not None:
                    folds.setdefault(int(f["fold"]), []).append(f[objective])
        return {"trial_id": f"the top third of {len(peers)} trials of this "
                            f"{budget[0] - budget[1]}-epoch round",
                "folds": {k: sorted(v, reverse=direction == "max")[min(rank, len(v)) - 1]
                          for k, v in folds.items()}}
    pick = max if direction == "max" else min
    best = pick(peers, key=lambda cv: cv["mean"][objective])
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
                f"below {_against(ref)}'s {target:.4f} on that fold")
    if score <= target * (1 + LOSS_MARGIN):
        return None
    return (f"pruned after fold {fold + 1}: {objective} {score:.4f} is more than "
            f"{LOSS_MARGIN:.0%} above {_against(ref)}'s {target:.4f} on that fold")


def _against(ref: dict[str, Any]) -> str:
    """``the best trial 0003`` or ``the top third of 5 trials of this 4-epoch round``."""
    tid = str(ref["trial_id"])
    return tid if tid.startswith("the top third") else f"the best trial {tid}"


def family_records(family_dir: Path) -> list[dict[str, Any]]:
    """Every trial's ``cv.json`` in a family folder (workers' trials included)."""
    return [r for r in (read_json(p) for p in sorted(Path(family_dir).glob("trial_*/cv.json")))
            if r]
