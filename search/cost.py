"""Cost-aware scheduling under ``--time-budget``: what a configuration will cost, and when to stop it.

Two rules, both judged at the end of every epoch from the configuration's own measured speed
(seconds per epoch of its latest epoch; the first epoch also traces and compiles the model, so
the estimate is taken from the second epoch on whenever the fold has one):

* **Cannot finish.** When the configuration's remaining work (the rest of this fold plus its
  folds still to run, at the epochs a fold of this search typically trains) needs more time
  than the budget has left, it stops now, saying so, instead of being cut at the budget with
  nothing to show. Its finished folds stay on disk and the search goes on to cheaper draws.
  The rule waits until one trial of the family has completed: before that a search has no
  result at all, and a trial the budget cuts stays resumable (a later session finishes it),
  while a stopped one would not.
* **Share.** No configuration may spend more than ``--max-trial-share`` of the budget
  (default 25%) before it has been judged against the others (by a rung of
  ``search.pruning`` or by racing after a fold). The first configuration is exempt: it has no
  one to be judged against, and it is the space's defaults (the notes' basic model).

Both stop the trial as ``PRUNED`` with the reason; neither applies without a time budget.
"""

from __future__ import annotations

import statistics
from typing import Iterable

DEFAULT_MAX_TRIAL_SHARE = 0.25


def typical_fold_epochs(epochs_trained: Iterable[int], max_epochs: int) -> float:
    """Epochs a fold of this search typically trains: the median over finished folds of the
    same budget (early stopping ends most before ``max_epochs``), or ``max_epochs`` when none
    finished yet."""
    seen = [int(e) for e in epochs_trained if e]
    if not seen:
        return float(max_epochs)
    return float(min(max_epochs, statistics.median(seen)))


def remaining_seconds(*, seconds_per_epoch: float, epochs_done: int, fold_epochs: float,
                      max_epochs: int, folds_left: int) -> float:
    """Seconds the configuration still needs: this fold to its typical length (at least one
    more epoch unless it is at ``max_epochs``), then ``folds_left`` whole folds.

    Args:
        seconds_per_epoch: Its measured speed.
        epochs_done: Epochs of the current fold trained so far.
        fold_epochs: :func:`typical_fold_epochs`.
        max_epochs: The fold's epoch cap (the round's length for Hyperband).
        folds_left: Folds after the current one.
    """
    this_fold = max(fold_epochs - epochs_done, 1.0 if epochs_done < max_epochs else 0.0)
    return seconds_per_epoch * (this_fold + folds_left * fold_epochs)


def cannot_finish_reason(*, needed_s: float, left_s: float | None, fold: int,
                         epoch: int) -> str | None:
    """Why the configuration stops because its remaining work exceeds the budget left, or None."""
    if left_s is None or left_s <= 0 or needed_s <= left_s:
        # Spent already: the budget itself cuts the fold, which stays resumable.
        return None
    return (f"stopped in fold {fold + 1} at epoch {epoch} by cost: its remaining folds need "
            f"about {needed_s / 60:.1f} min at its measured speed, the time budget has "
            f"{max(0.0, left_s) / 60:.1f} min left")


def share_reason(*, spent_s: float, budget_s: float | None, share: float, judged: bool,
                 has_peers: bool, fold: int, epoch: int,
                 left_s: float | None = None) -> str | None:
    """Why the configuration stops for using more than ``share`` of the budget unjudged, or None.

    Args:
        spent_s: Seconds the configuration has trained in this session (the budget is per
            session, so is its share).
        budget_s: The family's whole time budget in seconds (None: no budget, no rule).
        share: ``--max-trial-share``.
        judged: It already passed a comparison with other trials.
        has_peers: Other trials ended before it (the first configuration is exempt).
        left_s: Seconds the budget has left (spent: the budget cut applies, not this rule).
    """
    if budget_s is None or judged or not has_peers or spent_s <= share * budget_s:
        return None
    if left_s is not None and left_s <= 0:
        return None  # spent already: the budget itself cuts the fold, which stays resumable
    return (f"stopped in fold {fold + 1} at epoch {epoch} by cost: {spent_s / 60:.1f} min, more "
            f"than {share:.0%} of the {budget_s / 60:g}-min budget, before it could be judged "
            "against the other trials (--max-trial-share)")
