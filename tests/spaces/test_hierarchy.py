"""Pure width and placement rules."""

from __future__ import annotations

import pytest

from spaces import layer_widths, objective_direction, placement
from spaces.space import SpaceError


@pytest.mark.parametrize("hierarchy,n,want", [
    ("increasing", 3, [32, 64, 128]), ("decreasing", 3, [128, 64, 32]),
    ("constant", 2, [32, 32]), ("diamond", 5, [32, 64, 128, 64, 32]),
    ("diamond", 4, [32, 64, 64, 32]), ("increasing", 0, []), ("decreasing", 1, [32]),
])
def test_layer_widths(hierarchy, n, want):
    assert layer_widths(32, n, hierarchy) == want


def test_layer_widths_cap_and_errors():
    assert layer_widths(256, 4, "increasing", cap=1024) == [256, 512, 1024, 1024]
    with pytest.raises(ValueError):
        layer_widths(32, 2, "zigzag")


@pytest.mark.parametrize("position,n,want", [
    ("none", 3, [False] * 3), ("all", 2, [True, True]), ("last", 3, [False, False, True]),
    ("first_half", 4, [True, True, False, False]), ("second_half", 3, [False, True, True]),
    ("first_half", 1, [True]), ("last_block", 2, [False, True]),
])
def test_placement(position, n, want):
    assert placement(position, n) == want


def test_objective_direction():
    assert objective_direction("val_loss") == "min"
    assert objective_direction("val_auc") == objective_direction("recall") == "max"
    with pytest.raises(SpaceError, match="val_pr_auc"):
        objective_direction("val_f1")
