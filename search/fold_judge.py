"""Judging a trial during its folds: the epoch-end seam for rung pruning and cost-aware stops.

:class:`TrialJudge` holds one trial's state across its folds (time spent, whether it has
already been compared with other trials) and gives ``search.fold_fit`` one Keras callback per
fold. The callback applies, at the end of every epoch, the rules of ``search.pruning`` (a
hopeless curve at a rung) and ``search.cost`` (cannot finish within the budget; more than its
share of the budget unjudged); the first that fires stops the fit, and ``fit_fold`` raises
:class:`TrialStopped` after saving the partial curve. The rules are pure functions; this module
only feeds them what the fit measures.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from search import cost, pruning


class TrialStopped(Exception):
    """A rule stopped the trial inside a fold; ``record`` is the partial fold's record."""

    def __init__(self, reason: str, rule: str, record: dict[str, Any]):
        super().__init__(reason)
        self.reason, self.rule, self.record = reason, rule, record


class TrialJudge:
    """One trial's judge across its folds.

    Args:
        family_dir: The family's project folder (peers' curves are read from it).
        trial_id: The judged trial.
        metric: The epoch metric (``search.probes.epoch_metric`` of the objective).
        direction: ``max`` or ``min``.
        budget_epochs: ``search.racing.budget_of`` of the trial (peers share it).
        n_folds: Folds of the search.
        pruning: Apply the rung rule (``--no-pruning`` turns it off).
        time_budget: The family's ``search.budget.TimeBudget`` (its ``minutes`` may be None).
        max_share: ``--max-trial-share``.
        has_peers: Other trials of the family ended before this one.
        has_completed: Another trial of the family completed (the cannot-finish rule waits for
            one: until a search has a result, a trial the budget cuts stays resumable).
        typical_epochs: ``search.cost.typical_fold_epochs`` for this budget.
        judged: It was already judged against others (a promoted Hyperband configuration).
        grace: The first rung (None: ``search.pruning.GRACE_EPOCHS``); the search passes
            ``search.pruning.grace_for(patience)``.
        clock: Monotonic clock (injectable for tests).
    """

    def __init__(self, *, family_dir: Path, trial_id: str, metric: str, direction: str,
                 budget_epochs: tuple[int, int] | None, n_folds: int, pruning: bool, time_budget,
                 max_share: float, has_peers: bool, typical_epochs: float,
                 has_completed: bool = True, judged: bool = False, grace: int | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.family_dir, self.trial_id = Path(family_dir), trial_id
        self.metric, self.direction = metric, direction
        self.budget_epochs, self.n_folds = budget_epochs, n_folds
        self.pruning, self.time_budget, self.max_share = pruning, time_budget, max_share
        self.has_peers, self.typical_epochs = has_peers, typical_epochs
        self.has_completed, self.grace = has_completed, grace
        self._clock = clock
        # This session's time only: the budget, and so its share, is per session.
        self._start = clock()
        # True once the trial passed a comparison with others (a rung with enough peers, or
        # racing after a fold; promotion by Hyperband): the share rule no longer applies.
        self.judged = judged
        self.stop: tuple[str, str, int] | None = None  # (reason, rule, epochs into the round)

    @property
    def spent_s(self) -> float:
        """Seconds this trial has trained in this session."""
        return self._clock() - self._start

    def callback(self, fold: int, round_epochs: int):
        """The Keras callback for one fold of ``round_epochs`` epochs."""
        import keras

        judge = self
        peers = (pruning.peer_curves(self.family_dir, fold, metric=self.metric,
                                     direction=self.direction, budget=self.budget_epochs,
                                     exclude=self.trial_id) if self.pruning else [])
        rung_set = set(pruning.rungs(round_epochs, grace=self.grace))

        class Judge(keras.callbacks.Callback):
            # Per fold, not per fit: the transfer family fits a fold in two stages (two
            # ``fit`` calls with the same callbacks), and the rungs count the whole round.
            def __init__(self):
                super().__init__()
                self.values: list[float] = []
                self.durations: list[float] = []

            def on_epoch_begin(self, epoch, logs=None):
                self._t0 = judge._clock()

            def on_epoch_end(self, epoch, logs=None):
                self.durations.append(judge._clock() - self._t0)
                value = (logs or {}).get(judge.metric)
                self.values.append(float("nan") if value is None else float(value))
                if self.model.stop_training:
                    return  # early stopping (or a signal) already ended the fold: keep it
                reason = judge.decide(fold, len(self.values), round_epochs, self.values,
                                      self.durations, peers, rung_set)
                if reason is not None:
                    self.model.stop_training = True

        return Judge()

    def decide(self, fold: int, epoch: int, round_epochs: int, values: list[float],
               durations: list[float], peers: list[dict[str, Any]], rung_set: set[int]
               ) -> str | None:
        """Applies the rules after ``epoch`` epochs of the fold; records and returns a reason."""
        if self.stop is not None or epoch >= round_epochs:
            return None  # the fold ends now anyway: nothing to save by stopping it
        if epoch in rung_set and peers:
            best = pruning.running_best(values, self.direction)[-1]
            reason = pruning.verdict(best, epoch, fold, peers, metric=self.metric,
                                     direction=self.direction)
            if reason is not None:
                self.stop = (reason, "rung", epoch)
                return reason
            if len(pruning.values_at(peers, epoch)) >= pruning.MIN_PEERS:
                self.judged = True
        minutes = getattr(self.time_budget, "minutes", None)
        if minutes is None:
            return None
        # The first epoch also traces and compiles the model: measure from the second on.
        per_epoch = durations[-1] if len(durations) > 1 else durations[0]
        needed = cost.remaining_seconds(
            seconds_per_epoch=per_epoch, epochs_done=epoch,
            fold_epochs=min(self.typical_epochs, round_epochs), max_epochs=round_epochs,
            folds_left=self.n_folds - fold - 1)
        reason = None
        if len(durations) > 1 and self.has_completed:
            reason = cost.cannot_finish_reason(needed_s=needed,
                                               left_s=self.time_budget.remaining_s,
                                               fold=fold, epoch=epoch)
        reason = reason or cost.share_reason(
            spent_s=self.spent_s, budget_s=minutes * 60.0, share=self.max_share,
            judged=self.judged, has_peers=self.has_peers, fold=fold, epoch=epoch,
            left_s=self.time_budget.remaining_s)
        if reason is not None:
            self.stop = (reason, "cost", epoch)
        return reason
