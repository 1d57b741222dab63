"""Ensemble selection over the finished configurations (Caruana et al. 2004).

Good configurations end within the fold noise of each other, so exporting the single top row is
a coin toss among them; averaging them is not. After the search, as auto-sklearn and AutoGluon
do, ``--ensemble select`` (the default) builds a weighted average by greedy forward selection
with replacement over every finished configuration's out-of-fold predictions
(``search/store/oof.py``):

1. start from an empty bag;
2. at each step add the configuration (one already in the bag included) whose addition gives
   the best search objective on the bag's averaged out-of-fold scores, ties to the one ranked
   higher on the leaderboard; once the bag holds ``max_members`` distinct configurations only
   those can be added again;
3. after ``rounds`` steps keep the shortest prefix of the bag that reached the best score; a
   configuration's weight is its share of that prefix.

The objective is computed as the search computes it: per fold, on fold ``k``'s validation
images (the clean scores or the probe's shifted copy), then averaged over the folds. Everything
comes from the ``oof_fold<k>.npz`` files, so the selection is reproducible from the files alone
(``ensemble.json`` records it, with each file's SHA-256). The out-of-fold scores drove each
fold model's early stopping, so the score of the selected bag is optimistic, like every
out-of-fold figure here.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from search.fit.probes import batch_auc
from search.store.oof import CLEAN, SIGNALS, FoldOOF, load_trial_oof, oof_path

METHOD = "caruana_greedy_forward_with_replacement"
DEFAULT_MAX_MEMBERS = 5
DEFAULT_ROUNDS = 25
# Objectives the out-of-fold scores can compute; any other is selected on clean val_auc.
_LOSS, _ACC, _PR = "val_loss", "val_accuracy", "val_pr_auc"
BATCH, ROBUST = "val_auc_batch", "val_auc_robust"
SUPPORTED = (*SIGNALS, BATCH, ROBUST, _LOSS, _ACC, _PR)


@dataclass
class Selection:
    """A selected ensemble: members (best first by weight), their weights and the trajectory."""

    objective: str
    direction: str
    selected_on: str
    max_members: int
    rounds: int
    members: list[dict[str, Any]]       # [{"trial_id", "weight", "count"}]
    score: float
    trajectory: list[dict[str, Any]] = field(default_factory=list)   # [{"step", "added", "score"}]
    candidates: list[dict[str, Any]] = field(default_factory=list)   # [{"trial_id", "score"}]
    excluded: list[dict[str, str]] = field(default_factory=list)     # [{"trial_id", "reason"}]
    fallback: str | None = None
    files: dict[str, list[str]] = field(default_factory=dict)  # trial -> OOF files' SHA-256

    @property
    def weights(self) -> dict[str, float]:
        """``{trial_id: weight}``."""
        return {m["trial_id"]: float(m["weight"]) for m in self.members}


def selectable_objective(objective: str) -> str:
    """The objective the out-of-fold scores can compute: ``objective`` itself, else ``val_auc``."""
    return objective if objective in SUPPORTED else CLEAN


def auc(y: np.ndarray, scores: np.ndarray) -> float:
    """ROC-AUC by the rank-sum (Mann-Whitney) formula, ties averaged: scikit-learn's value,
    without its per-call overhead (the selection computes thousands of them)."""
    from scipy.stats import rankdata

    y = np.asarray(y).astype(bool).ravel()
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(scores, dtype=float).ravel())
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def fold_metric(objective: str, y: np.ndarray, scores: dict[str, np.ndarray],
                batches: np.ndarray | None = None) -> float:
    """The objective on one fold's (averaged) out-of-fold scores.

    Args:
        objective: One of :data:`SUPPORTED`.
        y: The fold's 0/1 labels.
        scores: ``{signal: scores}`` (:data:`search.store.oof.SIGNALS`).
        batches: Acquisition batch per image, for ``val_auc_batch``.

    Returns:
        The value; NaN when it cannot be measured on this fold.
    """
    clean = scores[CLEAN]
    if objective in SIGNALS:
        return auc(y, scores[objective])
    if objective == BATCH:
        value = batch_auc(y, clean, batches)
        return float("nan") if value is None else value
    if objective == ROBUST:
        values = [auc(y, scores[s]) for s in SIGNALS if s in scores]
        by_batch = batch_auc(y, clean, batches)
        values += [] if by_batch is None else [by_batch]
        finite = [v for v in values if np.isfinite(v)]
        return float(min(finite)) if finite else float("nan")
    if objective == _LOSS:
        p = np.clip(clean, 1e-7, 1 - 1e-7)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    if objective == _ACC:
        return float(np.mean((clean >= 0.5) == (y == 1)))
    if objective == _PR:
        from sklearn.metrics import average_precision_score

        return float(average_precision_score(y, clean))
    raise ValueError(f"objective {objective!r} cannot be computed from out-of-fold scores")


def bag_score(folds: Sequence[FoldOOF], sums: list[dict[str, np.ndarray]], n: int,
              objective: str) -> float:
    """The objective of a bag whose summed scores are ``sums`` (``n`` members), fold mean."""
    values = [fold_metric(objective, f.y, {s: v / n for s, v in sums[k].items()}, f.batches)
              for k, f in enumerate(folds)]
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _better(a: float, b: float, direction: str) -> bool:
    if not np.isfinite(a):
        return False
    if not np.isfinite(b):
        return True
    return a > b if direction == "max" else a < b


def _signals_needed(objective: str) -> tuple[str, ...]:
    if objective in SIGNALS and objective != CLEAN:
        return (CLEAN, objective)
    return SIGNALS if objective == ROBUST else (CLEAN,)


def caruana_select(candidates: dict[str, list[FoldOOF]], *, objective: str, direction: str,
                   max_members: int = DEFAULT_MAX_MEMBERS, rounds: int = DEFAULT_ROUNDS
                   ) -> Selection:
    """Greedy forward selection with replacement (module docstring).

    Args:
        candidates: ``{trial_id: its FoldOOF records in fold order}``, in leaderboard order
            (ties go to the earlier one). All must share folds (checked by the caller:
            :func:`aligned_candidates`).
        objective: The search objective (see :func:`selectable_objective`).
        direction: ``"max"`` or ``"min"``.
        max_members: The most distinct configurations in the ensemble (>= 1).
        rounds: Selection steps (the bag's size before the best prefix is kept).

    Returns:
        The selection. One candidate: that configuration alone, weight 1, with ``fallback``
        saying so.

    Raises:
        ValueError: no candidates, or ``max_members`` < 1.
    """
    if not candidates:
        raise ValueError("ensemble selection needs at least one candidate")
    if max_members < 1:
        raise ValueError(f"max_members must be at least 1, got {max_members}")
    on = selectable_objective(objective)
    direction = "min" if on == _LOSS else ("max" if on != objective else direction)
    ids = list(candidates)
    first = candidates[ids[0]]
    need = _signals_needed(on)
    singles = {t: bag_score(first, [{s: f.scores[s] for s in need} for f in candidates[t]], 1, on)
               for t in ids}
    cand_rows = [{"trial_id": t, "score": singles[t]} for t in ids]
    if len(ids) == 1:
        return Selection(objective, direction, on, max_members, 0,
                         [{"trial_id": ids[0], "weight": 1.0, "count": 1}], singles[ids[0]],
                         [{"step": 1, "added": ids[0], "score": singles[ids[0]]}], cand_rows,
                         fallback="one finished configuration: its fold ensemble")
    sums = [{s: np.zeros_like(f.scores[s]) for s in need} for f in first]
    bag: list[str] = []
    trajectory = []
    for step in range(1, max(1, rounds) + 1):
        allowed = ids if len(set(bag)) < max_members else [t for t in ids if t in bag]
        best_t, best_v = None, float("nan")
        for t in allowed:
            trial_sums = [{s: sums[k][s] + candidates[t][k].scores[s] for s in need}
                          for k in range(len(first))]
            value = bag_score(first, trial_sums, len(bag) + 1, on)
            if best_t is None or _better(value, best_v, direction):
                best_t, best_v = t, value
        for k in range(len(first)):
            for s in need:
                sums[k][s] = sums[k][s] + candidates[best_t][k].scores[s]
        bag.append(best_t)
        trajectory.append({"step": step, "added": best_t, "score": best_v})
    best_step = 0
    for i, row in enumerate(trajectory):
        if _better(row["score"], trajectory[best_step]["score"], direction):
            best_step = i
    kept = bag[:best_step + 1]
    counts = {t: kept.count(t) for t in dict.fromkeys(kept)}
    members = sorted(({"trial_id": t, "weight": c / len(kept), "count": c}
                      for t, c in counts.items()),
                     key=lambda m: (-m["count"], ids.index(m["trial_id"])))
    return Selection(objective, direction, on, max_members, rounds, members,
                     trajectory[best_step]["score"], trajectory, cand_rows)


def aligned_candidates(trials: list[tuple[str, Path]], n_folds: int
                       ) -> tuple[dict[str, list[FoldOOF]], list[dict[str, str]]]:
    """Loads each trial's out-of-fold files; keeps those that align with the first one.

    Args:
        trials: ``[(trial_id, trial folder)]`` in leaderboard order.
        n_folds: The run's number of folds.

    Returns:
        ``(candidates, excluded)``: excluded trials with the reason (no files, other folds).
    """
    out: dict[str, list[FoldOOF]] = {}
    excluded = []
    ref = None
    for tid, tdir in trials:
        folds = load_trial_oof(tdir, n_folds)
        if folds is None:
            excluded.append({"trial_id": tid, "reason": "no out-of-fold predictions on disk "
                             "(a fold finished before they were recorded, or a file is damaged)"})
            continue
        key = [(f.digest, len(f.y)) for f in folds]
        if ref is None:
            ref = key
        elif key != ref:
            excluded.append({"trial_id": tid, "reason": "its folds' validation images differ "
                             "from the other trials' (other data or folds)"})
            continue
        out[tid] = folds
    return out, excluded


def file_digests(trial_dir: Path, n_folds: int) -> list[str]:
    """SHA-256 of each ``oof_fold<k>.npz`` of a trial (recorded in ensemble.json)."""
    return [hashlib.sha256(oof_path(trial_dir, k).read_bytes()).hexdigest()
            for k in range(n_folds)]


def to_json(sel: Selection) -> dict[str, Any]:
    """``ensemble.json``'s content for a selection."""
    files = sel.files
    clean = (lambda v: None if v is None or not math.isfinite(float(v)) else float(v))
    return {
        "method": METHOD, "objective": sel.objective, "selected_on": sel.selected_on,
        "direction": sel.direction, "max_members": sel.max_members, "rounds": sel.rounds,
        "members": [dict(m, weight=float(m["weight"])) for m in sel.members],
        "score": clean(sel.score),
        "score_note": ("the objective on the weighted out-of-fold scores, fold mean; optimistic: "
                       "each fold model was early-stopped on the images that score it"),
        "trajectory": [dict(r, score=clean(r["score"])) for r in sel.trajectory],
        "candidates": [dict(r, score=clean(r["score"]),
                            **({"oof_sha256": files[r["trial_id"]]}
                               if files and r["trial_id"] in files else {}))
                       for r in sel.candidates],
        "excluded": sel.excluded, "fallback": sel.fallback}


def from_json(obj: dict[str, Any]) -> Selection:
    """The selection recorded in ``ensemble.json``."""
    nan = float("nan")
    return Selection(
        objective=obj["objective"], direction=obj["direction"], selected_on=obj["selected_on"],
        max_members=int(obj["max_members"]), rounds=int(obj["rounds"]),
        members=[dict(m) for m in obj["members"]],
        score=nan if obj.get("score") is None else float(obj["score"]),
        trajectory=[dict(r, score=nan if r.get("score") is None else r["score"])
                    for r in obj.get("trajectory") or []],
        candidates=[{"trial_id": r["trial_id"],
                     "score": nan if r.get("score") is None else r["score"]}
                    for r in obj.get("candidates") or []],
        excluded=list(obj.get("excluded") or []), fallback=obj.get("fallback"),
        files={r["trial_id"]: list(r["oof_sha256"]) for r in obj.get("candidates") or []
               if r.get("oof_sha256")})


def family_objective(cfg: dict[str, Any], family: str, record: dict[str, Any] | None = None
                     ) -> tuple[str, str]:
    """The objective a family was searched with: run.json's per-family ``objectives`` (from
    ``--objective auto``), else its ``objective``, else the trial record's."""
    per_family = cfg.get("objectives") or {}
    if family in per_family:
        from spaces.metrics import objective_direction

        return str(per_family[family]), objective_direction(str(per_family[family]))
    if cfg.get("objective") and cfg.get("objective") != "auto":
        return str(cfg["objective"]), str(cfg.get("direction") or "max")
    record = record or {}
    return str(record.get("objective") or CLEAN), str(record.get("direction") or "max")
