"""The transfer family's stage boundary is a property of the trial's epochs, not of one fit.

A fake model records which stage each absolute epoch trained in (no Keras training), so the
rule is checked exactly: a Hyperband round continued past the boundary keeps fine-tuning, and
the export's retrain for ``E`` epochs has the stages those ``E`` epochs had in the search.
"""

from __future__ import annotations

from types import SimpleNamespace

import keras_tuner as kt
import numpy as np

from spaces.transfer import TransferHyperModel

X = np.zeros((4, 16, 16, 1), np.uint8)
Y = np.array([0, 1, 0, 1])


class FakeModel:
    """Trains nothing; notes the stage of every epoch ``fit`` runs."""

    def __init__(self, seen: dict[int, str]) -> None:
        self.seen, self.stage, self.stop_training = seen, "head", False

    def fit(self, x=None, y=None, *, validation_data, epochs, initial_epoch, callbacks, verbose,
            **kwargs):
        epochs_run = list(range(initial_epoch, epochs))
        for e in epochs_run:
            self.seen[e] = self.stage
        n = len(epochs_run)
        return SimpleNamespace(epoch=epochs_run, history={"loss": [1.0] * n,
                                                          "val_loss": [1.0] * n})


def _stages(hm: TransferHyperModel, rounds: list[tuple[int, int]], **fixed) -> dict[int, str]:
    """Stage per absolute epoch over ``rounds`` of ``(initial_epoch, epochs)``; each round is a
    new model, as a continued Hyperband round or a retrain builds one (backbone frozen)."""
    hp = kt.HyperParameters()
    hp.values.update({"fine_tune_blocks": 2, "head_epochs": 3, **fixed})
    hm.start_fine_tuning = lambda model, values: setattr(model, "stage", "fine")
    seen: dict[int, str] = {}
    for start, end in rounds:
        hm.fit(hp, FakeModel(seen), X, Y, validation_data=(X, Y), epochs=end,
               initial_epoch=start)
    return seen


def _hm(max_epochs: int | None) -> TransferHyperModel:
    return TransferHyperModel((16, 16, 1), weights="/weights/backbone.weights.h5",
                              max_epochs=max_epochs)


def test_a_continued_hyperband_round_never_refreezes_a_fine_tuned_backbone():
    whole = _stages(_hm(6), [(0, 6)])
    assert whole == {0: "head", 1: "head", 2: "head", 3: "fine", 4: "fine", 5: "fine"}
    # Rounds of 2 then 4 epochs, or 4 then 2: every epoch has the stage it has in one fit.
    assert _stages(_hm(6), [(0, 2), (2, 6)]) == whole
    assert _stages(_hm(6), [(0, 4), (4, 6)]) == whole
    # A round continued from a best epoch in stage 1 (carried head-only weights) still enters
    # stage 2 at the boundary.
    assert _stages(_hm(6), [(0, 2), (1, 5)])[3] == "fine"


def test_the_retrain_follows_the_stages_the_chosen_epoch_count_had():
    # Cross-validation chose 2 epochs, both head-only (head_epochs 3): the retrain has no
    # fine-tuning epoch that cross-validation never chose.
    assert _stages(_hm(6), [(0, 2)]) == {0: "head", 1: "head"}
    assert _stages(_hm(6), [(0, 5)]) == {0: "head", 1: "head", 2: "head", 3: "fine",
                                         4: "fine"}


def test_the_cap_keeps_one_fine_tuning_epoch_in_a_full_length_trial():
    assert _stages(_hm(3), [(0, 3)], head_epochs=5) == {0: "head", 1: "head", 2: "fine"}
    # Without a horizon (a lone fit) the fit's own end is the horizon.
    assert _stages(_hm(None), [(0, 3)], head_epochs=5) == {0: "head", 1: "head", 2: "fine"}
    # No stage 2 at all without fine_tune_blocks.
    assert set(_stages(_hm(6), [(0, 6)], fine_tune_blocks=0).values()) == {"head"}


def test_the_search_and_the_export_give_the_transfer_family_the_epoch_horizon():
    from results.rebuild import build_hypermodel
    from search.config import SearchConfig
    from search.engine import make_hypermodel
    from spaces import load_space

    config = SearchConfig(model="transfer", max_epochs=7, weights="none", max_params=10**7)
    hm = make_hypermodel("transfer", config, load_space(None), (16, 16, 1), [2, 2])
    assert hm.max_epochs == 7
    cfg = {"weights": "imagenet", "max_epochs": 9, "image_size": 16}
    assert build_hypermodel("transfer", cfg, (16, 16, 1), Y, 2).max_epochs == 9


def test_stage_two_never_starts_once_the_time_budget_is_spent():
    """Issue 30 item 5: a budget spent in stage 1's last epoch cuts the fold before stage 2
    (it restarts on resume), instead of starting a fine-tuning epoch only to discard it."""
    from search.schedule.budget import TimeBudget

    now = [0.0]
    budget = TimeBudget(1.0, clock=lambda: now[0])
    hm = _hm(6)
    hp = kt.HyperParameters()
    hp.values.update({"fine_tune_blocks": 2, "head_epochs": 3})
    hm.start_fine_tuning = lambda model, values: setattr(model, "stage", "fine")
    seen: dict[int, str] = {}
    model = FakeModel(seen)
    real_fit = model.fit

    def fit(*args, **kwargs):  # the budget is spent during stage 1
        out = real_fit(*args, **kwargs)
        now[0] = 120.0
        return out

    model.fit = fit
    hm.fit(hp, model, X, Y, validation_data=(X, Y), epochs=6, initial_epoch=0,
           callbacks=[budget.callback()])
    assert seen == {0: "head", 1: "head", 2: "head"} and model.stop_training
    assert budget.cut_fold  # search.fit.fold_fit then raises BudgetExhausted: resumable
