"""Threshold selection on constructed validation scores with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from results.errors import ResultsError
from results.thresholds import (operating_point, select_thresholds, threshold_for_sensitivity,
                                youden_threshold)

# 10 positives and 10 negatives; positives mostly score high.
Y = np.array([1] * 10 + [0] * 10)
S = np.array([0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.3, 0.1,
              0.72, 0.5, 0.45, 0.4, 0.35, 0.25, 0.2, 0.15, 0.05, 0.02])


def test_target_sensitivity_is_reached_with_best_specificity():
    t = threshold_for_sensitivity(Y, S, 0.9)  # 9 of 10 positives: everything >= 0.3
    assert 0.25 < t <= 0.3
    op = operating_point(Y, S, t)
    assert op["sensitivity"] >= 0.9
    assert op["specificity"] == pytest.approx(0.5)  # negatives 0.72..0.35 called positive
    # A slightly higher threshold would miss the target.
    assert operating_point(Y, S, 0.31)["sensitivity"] < 0.9


@pytest.mark.parametrize("target", [0.1, 0.5, 0.8, 0.95, 1.0])
def test_target_is_always_met_and_tight(target):
    t = threshold_for_sensitivity(Y, S, target)
    assert operating_point(Y, S, t)["sensitivity"] >= target
    higher = sorted(v for v in S if v > t)
    if higher:  # the next distinct score up would fall short of the target
        assert operating_point(Y, S, higher[0] + 1e-9)["sensitivity"] < target


def test_full_sensitivity_needs_the_lowest_positive():
    t = threshold_for_sensitivity(Y, S, 1.0)
    assert 0.05 < t <= 0.1


def test_threshold_is_between_scores_not_on_one():
    t = threshold_for_sensitivity(Y, S, 0.9)
    assert t not in set(S.tolist())


def test_youden_matches_brute_force():
    t = youden_threshold(Y, S)
    j = lambda th: (operating_point(Y, S, th)["sensitivity"]  # noqa: E731
                    + operating_point(Y, S, th)["specificity"] - 1)
    best = max(j(v) for v in np.linspace(0, 1, 2001))
    assert j(t) == pytest.approx(best)
    # positives >= 0.6 and only one negative (0.72) above: J = 0.8 - 0.1
    assert j(t) == pytest.approx(0.7)


def test_perfect_separation():
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.8, 0.9])
    assert 0.2 < youden_threshold(y, s) < 0.8
    assert 0.2 < threshold_for_sensitivity(y, s, 1.0) < 0.8


def test_select_thresholds_record():
    rec = select_thresholds(Y, S, 0.9)
    assert rec["threshold"] == rec["sensitivity_target"]["threshold"]
    for key in ("sensitivity_target", "youden", "default_0.5"):
        assert {"sensitivity", "specificity", "precision"} <= set(rec[key])
    assert rec["n_validation"] == 20 and rec["n_validation_positive"] == 10


def test_one_class_is_refused():
    with pytest.raises(ResultsError, match="only one class"):
        select_thresholds(np.ones(5), np.linspace(0, 1, 5))


def test_bad_target_is_refused():
    with pytest.raises(ResultsError, match="target-sensitivity"):
        threshold_for_sensitivity(Y, S, 1.5)
