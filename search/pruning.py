"""Pruning inside a fold: stop a trial at an epoch rung when its curve is hopeless.

Racing (``search.racing``) judges a trial only when a fold ends, so a configuration that learns
nothing, or learns slowly on a slow draw, holds the machine for a whole fold first (13 minutes,
43% of a 30-minute budget, in one reference run). This module judges *during* a fold, the way
asynchronous successive halving (ASHA; Optuna's ``SuccessiveHalvingPruner``) does:

* **Rungs.** A fold is judged at the end of epochs ``grace, grace * 3, grace * 9, ...`` of
  its round (counted from the round's first epoch, so a continued Hyperband round has rungs
  too), never at the fold's last epoch (the fold ends there anyway). The grace period is
  the early-stopping window, ``patience + 1`` epochs (at least :data:`GRACE_EPOCHS`): a curve
  that does not improve at all is early stopping's to end, and a slow starter that early
  stopping tolerates is not judged before it could have (the CNN with batch norm sat at
  ``val_auc`` 0.50 for 4 epochs on the shared data before it learnt, benchmarks/RESULTS.md).
* **Peers.** The trial's running best of the epoch metric (what early stopping would restore)
  is compared with the running best, at the same epoch of the same fold, of the earlier trials
  with the same epoch budget (a Hyperband round is compared with its own round length only):
  finished folds, and the curves of folds pruned before (kept in ``pruned_fold<k>.json``). A
  peer that early-stopped before the rung counts with the value it stopped at; a peer pruned
  before the rung does not count (ASHA counts those that reached the rung).
* **Top of the rung, not the single best.** The boundary is the value of the peer at rank
  ``ceil(n / 3)`` (the top third: what Hyperband promotes and ASHA keeps), and the trial is
  pruned only when it is more than a margin below that boundary (``search.racing.MARGIN`` =
  0.05 AUC; for ``val_loss`` 25% above). A slow learner that is within the margin of the top
  third goes on; only curves clearly below most of the field stop. At least
  :data:`MIN_PEERS` peers must have reached the rung, so the first trials always finish.

Why not Optuna's pruner objects: they read per-trial rung attributes of a ``Study`` and
compare at absolute steps, while here a peer is a fold of the same budget, on disk, written
by any worker, and the noise margin is part of the rule. The rule itself is ASHA's; the
grace period and margin were chosen by replaying the rule on recorded curves of the shared
training folder (``benchmarks/pruning_replay.py``; figures in ``benchmarks/RESULTS.md``).

A pruned trial is recorded like a raced one (``cv.json`` status ``PRUNED``, with the fold,
epoch and reason in ``pruned_at``), is never exported, and reports its partial score to the
oracle with ``cxr_pruned`` = 1. ``--no-pruning`` turns this rule off (racing has its own flag).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

from search.racing import LOSS_MARGIN, MARGIN, budget_of
from search.run_folder import read_json

# Measured (benchmarks/pruning_replay.py): see the module docstring.
GRACE_EPOCHS = 2  # the smallest grace period; the search uses grace_for(patience)
RUNG_FACTOR = 3
KEEP_FRACTION = 1 / 3
MIN_PEERS = 3


def pruned_fold_json(trial_dir: Path, fold: int) -> Path:
    """Where the curve of a fold pruned before its end is kept (peers read it)."""
    return Path(trial_dir) / f"pruned_fold{fold}.json"


def grace_for(patience: int) -> int:
    """The first rung for an early-stopping ``patience``: ``patience + 1``, at least
    :data:`GRACE_EPOCHS`."""
    return max(GRACE_EPOCHS, int(patience) + 1)


def rungs(max_epochs: int, grace: int | None = None, factor: int = RUNG_FACTOR) -> list[int]:
    """Epochs into a round at which a fold is judged: ``grace * factor**i`` below ``max_epochs``.

    Args:
        max_epochs: The round's length in epochs (the fold ends there: no rung).
        grace: The first rung (None: :data:`GRACE_EPOCHS`).
        factor: Growth of the rungs.
    """
    out, epoch = [], max(1, int(GRACE_EPOCHS if grace is None else grace))
    while epoch < max_epochs:
        out.append(epoch)
        epoch *= factor
    return out


def running_best(values: Iterable[float], direction: str) -> list[float]:
    """The best value up to each epoch (what restoring the best weights would give)."""
    out: list[float] = []
    for v in values:
        v = float(v)
        if not math.isfinite(v):
            v = -math.inf if direction == "max" else math.inf
        if out:
            v = max(v, out[-1]) if direction == "max" else min(v, out[-1])
        out.append(v)
    return out


def curve(history: dict[str, list[float]], metric: str, direction: str,
          finished: bool) -> dict[str, Any] | None:
    """A peer curve: ``{"best": running best per epoch of the round, "finished": bool}``.

    ``finished``: the fold ended on its own (all epochs or early stopping), so its value holds
    for later rungs; a pruned fold's curve ends where it was pruned.
    """
    values = history.get(metric)
    if not values:
        return None
    return {"best": running_best(values, direction), "finished": bool(finished)}


def value_at(peer: dict[str, Any], epoch: int) -> float | None:
    """A peer's running best after ``epoch`` epochs of its round (1-based), or None when it did
    not reach that epoch (pruned or cut before it)."""
    best = peer["best"]
    if epoch <= len(best):
        return best[epoch - 1]
    return best[-1] if peer["finished"] else None


def values_at(peers: list[dict[str, Any]], epoch: int) -> list[float]:
    """The finite running bests of the peers that reached ``epoch`` (the rung's field)."""
    return [v for v in (value_at(p, epoch) for p in peers) if v is not None and math.isfinite(v)]


def boundary(values: list[float], direction: str, keep_fraction: float) -> float:
    """The value at rank ``ceil(n * keep_fraction)`` (1 = best) of ``values``."""
    ordered = sorted(values, reverse=direction == "max")
    rank = max(1, math.ceil(len(ordered) * keep_fraction))
    return ordered[rank - 1]


def verdict(value: float, epoch: int, fold: int, peers: list[dict[str, Any]], *, metric: str,
            direction: str, margin: float | None = None, min_peers: int | None = None,
            keep_fraction: float | None = None) -> str | None:
    """Why a fold at ``epoch`` with running best ``value`` is hopeless, or None to go on.

    Args:
        value: The trial's running best of ``metric`` after ``epoch`` epochs of the round.
        epoch: Epochs into the round (a rung).
        fold: The fold (0-based; named in the reason).
        peers: :func:`curve` of each earlier trial on the same fold and budget.
        metric: The epoch metric (named in the reason).
        direction: ``max`` or ``min``.
        margin: Tolerance below the boundary (absolute for ``max``; for ``min`` a fraction
            above it). None: :data:`search.racing.MARGIN` or ``LOSS_MARGIN``.
        min_peers: Peers that must have reached the rung before anything is judged (None:
            :data:`MIN_PEERS`).
        keep_fraction: The boundary's rank as a fraction of the peers (None:
            :data:`KEEP_FRACTION`).
    """
    min_peers = MIN_PEERS if min_peers is None else min_peers
    keep_fraction = KEEP_FRACTION if keep_fraction is None else keep_fraction
    reached = values_at(peers, epoch)
    if len(reached) < min_peers or value is None:
        return None
    edge = boundary(reached, direction, keep_fraction)
    if direction == "max":
        m = MARGIN if margin is None else margin
        if not math.isfinite(value):
            value = -math.inf
        if value >= edge - m:
            return None
        gap = f"more than {m:g} below"
    else:
        m = LOSS_MARGIN if margin is None else margin
        if math.isfinite(value) and value <= edge * (1 + m):
            return None
        gap = f"more than {m:.0%} above"
    return (f"pruned in fold {fold + 1} at epoch {epoch}: {metric} {value:.4f} is {gap} "
            f"{edge:.4f}, the top-third boundary of {len(reached)} earlier trials at that epoch")


def peer_curves(family_dir: Path, fold: int, *, metric: str, direction: str,
                budget: tuple[int, int] | None, exclude: str | None = None) -> list[dict[str, Any]]:
    """The curves of every other trial on ``fold`` at the same epoch ``budget`` (read once per
    fold; workers' trials included, since they share the family folder).

    Args:
        family_dir: The KerasTuner project folder of the family.
        fold: The fold.
        metric: The epoch metric.
        direction: ``max`` or ``min``.
        budget: ``search.racing.budget_of`` of the judged trial (None: one budget).
        exclude: The judged trial's id.
    """
    out = []
    for cv_path in sorted(Path(family_dir).glob("trial_*/cv.json")):
        cv = read_json(cv_path)
        if not cv or str(cv.get("trial_id")) == str(exclude) or budget_of(cv) != budget:
            continue
        tdir = cv_path.parent
        finished = read_json(tdir / f"fold{fold}.json")
        if finished:
            c = curve(finished.get("history") or {}, metric, direction, finished=True)
        else:
            partial = read_json(pruned_fold_json(tdir, fold))
            c = curve((partial or {}).get("history") or {}, metric, direction, finished=False)
        if c:
            out.append(c)
    return out
