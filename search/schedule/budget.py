"""Time budget (``--time-budget MINUTES``): stop at the end of the epoch that spends it.

The budget is checked before each fold and at the end of every epoch (:class:`BudgetStop`), so a
family ends within one epoch (plus the fold's evaluation) of its budget. A fold that ended
naturally (its last epoch, or early stopping) in the epoch that spent the budget is kept. One
cut short is discarded and restarts on resume: saving a partial fold would need the optimizer
state and the early-stopping history to continue exactly, and a restarted fold gives the same
model as an uninterrupted one. The search stops with ``BudgetExhausted``, a KerasTuner
``FatalError`` so the oracle does not mark the trial failed: the trial stays RUNNING in the
oracle, its finished folds stay on disk, and rerunning the command resumes it under the same id.
"""

from __future__ import annotations

import time

from keras_tuner.errors import FatalError


class BudgetExhausted(FatalError):
    """The time budget is spent; the run is resumable."""


class SearchEnded(BudgetExhausted):
    """The budget left cannot take a new configuration to its first ladder rung
    (``search.schedule.cost.search_end_reason``); the run is resumable, the next trial stays
    queued."""


class TimeBudget:
    """Wall-clock budget of one model family in one search command (each family gets its own).

    Args:
        minutes: The budget, or None for no limit.
        clock: Monotonic clock (injectable for tests).
    """

    def __init__(self, minutes: float | None, clock=time.monotonic):
        self.minutes = minutes
        self._clock = clock
        self.start = clock()
        self.folds_started = 0
        self.cut_fold = False  # set by the callback when it stopped a fit short

    @property
    def elapsed_s(self) -> float:
        """Seconds since the budget started."""
        return self._clock() - self.start

    @property
    def remaining_s(self) -> float | None:
        """Seconds left, or None for no limit."""
        if self.minutes is None:
            return None
        return self.minutes * 60.0 - self.elapsed_s

    def spent(self) -> bool:
        """True once the budget is used up."""
        remaining = self.remaining_s
        return remaining is not None and remaining <= 0

    def check_before_fold(self) -> None:
        """Raises BudgetExhausted instead of starting a fold when the budget is spent."""
        if self.spent():
            raise BudgetExhausted(
                f"time budget of {self.minutes:g} min spent after {self.elapsed_s / 60:.1f} min"
            )
        self.folds_started += 1

    def callback(self):
        """A Keras callback that stops training at the end of the epoch that spends the budget;
        call :meth:`check_after_fit` after ``fit``."""
        import keras

        budget = self

        class BudgetStop(keras.callbacks.Callback):
            """Runs after EarlyStopping (fit_fold appends it last)."""

            def stops_before_stage(self) -> bool:
                """Asked by a multi-stage fit (spaces.transfer) before its next stage: True,
                and the fold counts as cut, when the budget is spent (the stage is not run)."""
                if budget.spent():
                    budget.cut_fold = True
                    return True
                return False

            def on_epoch_end(self, epoch, logs=None):
                # A fit whose last epoch spent the budget is complete: keep it. So is one that
                # early stopping already ended in this epoch (stop_training is set): its best
                # weights are restored as in any finished fold, nothing was cut.
                if (budget.spent() and epoch + 1 < self.params.get("epochs", 0)
                        and not self.model.stop_training):
                    self.model.stop_training = True
                    budget.cut_fold = True

        return BudgetStop()

    def check_after_fit(self) -> None:
        """Raises BudgetExhausted when the budget cut the fit short (the fold is discarded: it
        restarts on resume)."""
        if self.cut_fold:
            self.cut_fold = False
            raise BudgetExhausted(
                f"time budget of {self.minutes:g} min spent after {self.elapsed_s / 60:.1f} min, "
                "during a fold (it restarts on resume)")
