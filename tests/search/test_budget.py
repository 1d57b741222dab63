"""The time budget's callback (search.schedule.budget.BudgetStop) against a real, tiny Keras fit."""

from __future__ import annotations

import numpy as np
from search_helpers import tiny_dense_model

from search.schedule.budget import BudgetExhausted, TimeBudget


def _fit_with(budget: TimeBudget, stop_at_epoch: int | None, epochs: int = 5) -> int:
    """Fits a tiny model for ``epochs`` with, before the budget's callback, one that stops
    training at ``stop_at_epoch`` (what EarlyStopping does); returns the epochs trained."""
    import keras

    class StopAt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if stop_at_epoch is not None and epoch == stop_at_epoch:
                self.model.stop_training = True

    rng = np.random.default_rng(0)
    x, y = rng.random((16, 4)).astype("float32"), rng.integers(0, 2, 16)
    model = tiny_dense_model()
    history = model.fit(x, y, epochs=epochs, verbose=0,
                        callbacks=[StopAt(), budget.callback()])
    return len(history.history["loss"])


def _clock(spent_after_looks: int):
    """A clock that jumps past any budget after ``spent_after_looks`` looks (start included)."""
    looks = {"n": 0}

    def clock():
        looks["n"] += 1
        return 0.0 if looks["n"] <= spent_after_looks else 1e6

    return clock


def test_a_fold_that_early_stopping_ended_in_the_budget_epoch_is_kept():
    # Start + epoch 1's look: within the budget; epoch 2 spends it, when early stopping ends
    # the fit anyway: the fold is complete and must not be discarded.
    budget = TimeBudget(1.0, clock=_clock(2))
    assert _fit_with(budget, stop_at_epoch=1) == 2
    budget.check_after_fit()  # no BudgetExhausted: the fold is kept


def test_a_fold_the_budget_cut_short_is_discarded():
    budget = TimeBudget(1.0, clock=_clock(2))
    assert _fit_with(budget, stop_at_epoch=None) == 2
    try:
        budget.check_after_fit()
    except BudgetExhausted as exc:
        assert "restarts on resume" in str(exc)
    else:
        raise AssertionError("a fit cut short by the budget must raise BudgetExhausted")
