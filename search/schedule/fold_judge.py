"""Judging a trial while it trains: the seam where the ladder and the cost rule meet the fit.

:class:`TrialJudge` holds one trial's state across its folds (its ladder bracket, the rungs it
passed, the time it spent) and gives ``search.fit.fold_fit`` one Keras callback per fold. At the
end of every epoch the callback

* at a ladder rung inside the fold (``search.schedule.ladder``), measures the objective on the
  current weights and asks the ladder whether the configuration goes on, is stopped, or waits
  there for peers (suspended; the tuner asks again at the end of the fold for the fold-end rung,
  :meth:`TrialJudge.at_fold_end`);
* under ``--time-budget``, applies the share rule of ``search.schedule.cost`` to a configuration
  no rung has compared with another yet.

The first rule that fires stops the fit and ``fit_fold`` raises :class:`TrialStopped` after
saving the partial curve (a suspended fold also keeps its weights and optimizer state at the
rung, taken by the ``snapshot`` hook before early stopping restores its best weights). Each
rung's measurement is handed to ``on_rung`` at once (the tuner writes it to ``cv.json``, where
later trials and other workers read it). The rules are pure functions of their modules; this
one only feeds them what the fit measures.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from search.schedule import cost, ladder
from search.store.trial_record import family_records


class TrialStopped(Exception):
    """A rule stopped the trial inside a fold; ``record`` is the partial fold's record."""

    def __init__(self, reason: str, rule: str, record: dict[str, Any]):
        super().__init__(reason)
        self.reason, self.rule, self.record = reason, rule, record


# Measures the objective on the model's current weights: (model, epoch logs) -> {metric: value}.
Measure = Callable[[Any, dict], dict[str, float]]


class TrialJudge:
    """One trial's judge across its folds.

    Args:
        family_dir: The family's project folder (the peers' ``cv.json`` are read from it).
        trial_id: The judged trial.
        objective: The search objective (``val_auc_geometric``, ``val_auc``, ``val_loss``...).
        direction: ``max`` or ``min``.
        budget_epochs: ``search.schedule.ladder.budget_of`` of the trial (peers share it).
        round_epochs: Epochs of each fold's round (``--max-epochs``; a Hyperband round's length).
        first_rung: ``--first-rung``; None turns the ladder off (``--no-ladder``).
        brackets: ``--ladder-brackets``.
        time_budget: The family's ``search.schedule.budget.TimeBudget`` (its ``minutes`` may be
        None).
        max_share: ``--max-trial-share``.
        has_peers: Other trials of the family ended before this one (the first is exempt from
            the share rule).
        passed: Rung indices the trial already passed (a resumed trial, from its ``cv.json``).
        judged: It was already compared with another configuration (a promoted Hyperband
            configuration, or a rung with peers in an earlier session).
        on_rung: Called with each rung's entry as soon as it is measured.
        suspend: Suspend the trial at a rung too small to judge (``search.schedule.ladder``,
            "Suspension") instead of promoting it; False for Hyperband rounds.
        in_fold: Judge inside the first fold too. False for two-stage fits (the transfer
            family: a frozen-backbone epoch and a fine-tuning epoch are not the same budget,
            and head lengths differ between configurations), which are first judged at the
            end of their first fold, when every configuration has had both stages.
        folds: Folds of the search (the epochs a trial has left, for ``hold``).
        hold: The finish reserve's question at a rung the trial passes (``search.schedule.cost``,
            "Finish reserve"): ``(trial id, rung index, value, seconds to its next rung,
            seconds to finish every fold)`` -> why it must wait there so that the leader can
            still finish in the time left, or None to go on. Only asked where suspension
            applies.
        clock: Monotonic clock (injectable for tests).
    """

    def __init__(self, *, family_dir: Path, trial_id: str, objective: str, direction: str,
                 budget_epochs: tuple[int, int] | None, round_epochs: int,
                 first_rung: int | None, brackets: int = ladder.DEFAULT_BRACKETS,
                 time_budget=None, max_share: float = cost.DEFAULT_MAX_TRIAL_SHARE,
                 has_peers: bool = False, passed: set[int] | None = None, judged: bool = False,
                 on_rung: Callable[[dict[str, Any]], None] | None = None,
                 suspend: bool = False, in_fold: bool = True, folds: int = 1,
                 hold: Callable[[str, int, float, float, float], str | None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.family_dir, self.trial_id = Path(family_dir), str(trial_id)
        self.objective, self.direction = objective, direction
        self.budget_epochs = budget_epochs
        self.rungs = ([] if first_rung is None
                      else [r for r in ladder.rungs(round_epochs, first=first_rung)
                            if in_fold or r.epoch is None])
        self.bracket = ladder.bracket_of(self.trial_id, brackets)
        self.time_budget, self.max_share, self.has_peers = time_budget, max_share, has_peers
        self.passed = set(passed or ())
        self.judged = judged
        self.suspend = suspend
        self.folds, self.round_epochs, self.hold = folds, round_epochs, hold
        # Epochs trained in this session (all folds): with spent_s, the trial's own pace.
        self.session_epochs = 0
        # The rung entry where the trial was suspended (None: it was not).
        self.suspended: dict[str, Any] | None = None
        self.on_rung = on_rung or (lambda entry: None)
        self._clock = clock
        # This session's time only: the budget, and so its share, is per session.
        self._start = clock()
        # (reason, rule, epochs into the round, scores measured at the stop or None)
        self.stop: tuple[str, str, int, dict[str, float] | None] | None = None
        self.censored = False

    @property
    def enabled(self) -> bool:
        """The ladder is on."""
        return bool(self.rungs)

    @property
    def spent_s(self) -> float:
        """Seconds this trial has trained in this session."""
        return self._clock() - self._start

    def in_fold_rungs(self, fold: int) -> dict[int, ladder.Rung]:
        """``{epoch: rung}`` of the rungs inside ``fold``."""
        return {r.epoch: r for r in self.rungs if r.fold == fold and r.epoch is not None}

    def fold_end_rung(self, fold: int) -> ladder.Rung | None:
        """The rung at the end of ``fold``, or None."""
        return next((r for r in self.rungs if r.fold == fold and r.epoch is None), None)

    # -- the ladder ------------------------------------------------------------------------------
    def judge_rung(self, rung: ladder.Rung, value: float) -> str | None:
        """Records the trial's ``value`` at ``rung`` and returns why it stops there, or None.

        A bracket's first rung is ``bracket``: below it the value is recorded (for the record
        and the tuners) but nothing is judged. A rung too small to judge suspends the trial
        when :attr:`suspend` is on (:attr:`suspended` then holds the entry).
        """
        peers = ladder.peer_values(family_records(self.family_dir), rung.index,
                                   budget=self.budget_epochs, bracket=self.bracket,
                                   exclude=self.trial_id)
        v = ladder.verdict(value, peers, self.direction)
        judged_here = rung.index >= self.bracket
        waits = (self.suspend and judged_here and rung.index not in self.passed
                 and ladder.must_wait(v.field))
        promoted = not waits and (v.promoted or not judged_here or rung.index in self.passed)
        held = None
        if (promoted and self.suspend and self.hold is not None and judged_here
                and rung.index not in self.passed):
            costs = self._costs(rung)
            if costs is not None:
                held = self.hold(self.trial_id, rung.index, float(value), *costs)
        if held:
            waits, promoted = True, False
        entry = {"rung": rung.index, "fold": rung.fold, "epoch": rung.epoch,
                 "value": float(value), "rank": v.rank, "field": v.field, "keep": v.keep,
                 "promoted": promoted, "judged": judged_here,
                 "seconds": round(self.spent_s, 3)}
        if waits:
            entry["suspended"] = True
        if held:
            entry["held"] = True
        self.on_rung(entry)
        if held:
            self.suspended = entry
            return (f"suspended at {rung.describe()} (ladder rung {rung.index + 1}): "
                    f"{self.objective} {value:.4f} ranks {v.rank} of {v.field}, in the top "
                    f"{v.keep}, but {held}")
        if waits:
            self.suspended = entry
            return (f"suspended at {rung.describe()} (ladder rung {rung.index + 1}): "
                    f"{self.objective} {value:.4f} ranks {v.rank} of {v.field}; fewer than "
                    f"{ladder.ETA} configurations reached this rung, so it waits for more and "
                    "goes on from here if it ranks in their top third")
        if promoted:
            self.passed.add(rung.index)
            self.judged = self.judged or (judged_here and v.field > 1)
            return None
        return ladder.reason(v, rung, value, self.objective)

    def _costs(self, rung: ladder.Rung) -> tuple[float, float] | None:
        """Seconds this trial needs, at its pace in this session, to reach its next rung and to
        finish every fold from ``rung``; None before it trained an epoch."""
        if self.session_epochs <= 0:
            return None
        pace = self.spent_s / self.session_epochs
        to_next, to_finish = ladder.stretch_epochs(self.rungs, rung, self.folds,
                                                   self.round_epochs)
        return pace * to_next, pace * to_finish

    def at_fold_end(self, fold: int, value: float | None) -> str | None:
        """The fold-end rung of ``fold`` (the fold's objective at its restored weights): why
        the trial stops there, or None to go on (also when ``fold`` has no such rung)."""
        rung = self.fold_end_rung(fold)
        if rung is None or value is None:
            return None
        return self.judge_rung(rung, value)

    # -- the callback ----------------------------------------------------------------------------
    def callback(self, fold: int, round_epochs: int, measure: Measure, start: int = 0,
                 snapshot: Callable[[Any], None] | None = None):
        """The Keras callback for one fold of ``round_epochs`` epochs.

        Args:
            fold: The fold.
            round_epochs: Epochs of the fold's round (no rung at its last epoch).
            measure: Scores the objective on the model's current weights.
            start: Epochs of the round the fold already had (a suspended fold continued).
            snapshot: Called with the model at the epoch the trial is suspended, before
                early stopping restores its best weights at the fit's end.
        """
        import keras

        judge = self
        at = self.in_fold_rungs(fold)

        class Judge(keras.callbacks.Callback):
            # Per fold, not per fit: the transfer family fits a fold in two stages (two
            # ``fit`` calls with the same callbacks), and the rungs count the whole round.
            def __init__(self):
                super().__init__()
                self.epochs = start

            def on_epoch_end(self, epoch, logs=None):
                self.epochs += 1
                judge.session_epochs += 1
                if self.model.stop_training or judge.stop is not None:
                    return  # early stopping (or a signal) already ended the fold: keep it
                if self.epochs >= round_epochs:
                    return  # the fold ends now anyway: nothing to save by stopping it
                scores = None
                rung = at.get(self.epochs)
                if rung is not None:
                    scores = measure(self.model, logs or {})
                    value = scores.get(judge.objective)
                    reason = judge.judge_rung(rung, float("nan") if value is None else value)
                    if reason is not None:
                        rule = "suspend" if judge.suspended is not None else "ladder"
                        judge.stop = (reason, rule, self.epochs, scores)
                        if rule == "suspend" and snapshot is not None:
                            snapshot(self.model)
                        self.model.stop_training = True
                        return
                reason = judge.cost_reason(fold, self.epochs)
                if reason is not None:
                    judge.stop = (reason, "cost", self.epochs, scores)
                    judge.censored = True
                    self.model.stop_training = True

        return Judge()

    def cost_reason(self, fold: int, epoch: int) -> str | None:
        """The share rule (search.schedule.cost) for a configuration no rung compared yet, or
        None."""
        minutes = getattr(self.time_budget, "minutes", None)
        if minutes is None or not self.enabled:
            # Without the ladder nothing ever judges a trial, so "unjudged" says nothing.
            return None
        return cost.share_reason(spent_s=self.spent_s, budget_s=minutes * 60.0,
                                 share=self.max_share, judged=self.judged,
                                 has_peers=self.has_peers, fold=fold, epoch=epoch,
                                 left_s=self.time_budget.remaining_s)
