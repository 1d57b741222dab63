"""Diagnosis rules on constructed learning curves (pure, fast)."""

from __future__ import annotations

import math

import pytest

from search.fit.diagnosis import combine, diagnose


def curve(train, val):
    return {"loss": list(train), "val_loss": list(val)}


@pytest.mark.parametrize("train,val,label", [
    # training keeps falling, validation bottoms out then climbs > 10 %
    ([0.6, 0.4, 0.3, 0.2, 0.1, 0.05], [0.6, 0.45, 0.40, 0.45, 0.55, 0.7], "overfitting"),
    # training stays near chance level
    ([0.69, 0.68, 0.68, 0.67, 0.67], [0.70, 0.69, 0.69, 0.69, 0.69], "underfitting"),
    # training loss not below validation loss
    ([0.40, 0.35, 0.33, 0.32, 0.32], [0.30, 0.28, 0.27, 0.27, 0.27], "underfitting"),
    # high, low, high, low: oscillating validation loss
    ([0.6, 0.5, 0.4, 0.35, 0.3, 0.28], [0.6, 0.3, 0.7, 0.3, 0.8, 0.35], "unstable"),
    # still improving at the last epoch
    ([0.6, 0.5, 0.4, 0.3], [0.65, 0.55, 0.45, 0.38], "not_converged"),
    # converged, small gap, train below val
    ([0.6, 0.4, 0.3, 0.25, 0.24, 0.24], [0.6, 0.45, 0.36, 0.33, 0.33, 0.335], "good_fit"),
])
def test_constructed_curves(train, val, label):
    assert diagnose(curve(train, val)) == label


def test_nan_is_unstable_and_short_is_not_converged():
    assert diagnose(curve([0.5, math.nan], [0.5, 0.4])) == "unstable"
    assert diagnose(curve([0.5], [0.6])) == "not_converged"
    assert diagnose({}) == "not_converged"


def test_small_wiggles_are_not_unstable():
    val = [0.40, 0.39, 0.395, 0.389, 0.392, 0.388]
    assert diagnose(curve([0.3, 0.25, 0.22, 0.2, 0.19, 0.18], val)) != "unstable"


def test_combine_majority_and_ties():
    assert combine(["good_fit", "overfitting", "good_fit"]) == "good_fit"
    assert combine(["good_fit", "overfitting"]) == "overfitting"  # tie -> earlier in LABELS
    assert combine([]) == "not_converged"
