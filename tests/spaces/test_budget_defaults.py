"""Budgets that follow the input: size-aware defaults and the FLOPs limit, before any build."""

from __future__ import annotations

import keras_tuner as kt
import pytest

import spaces
from search.config import SearchConfig, resolve_budgets
from spaces.budget import default_max_gflops, default_max_params


def _hp(**values) -> kt.HyperParameters:
    hp = kt.HyperParameters()
    hp.values.update(values)
    return hp


@pytest.mark.parametrize("size", [64, 128, 224])
def test_the_notes_basic_cnn_is_accepted_by_default_at_common_sizes(size):
    cfg = resolve_budgets(SearchConfig(image_size=size))
    hm = spaces.CNNHyperModel((size, size, 1), max_params=cfg.max_params,
                              max_gflops=cfg.max_gflops)
    hp = kt.HyperParameters()
    assert hm.count_params(hp) <= cfg.max_params and hm.gflops(hp) <= cfg.max_gflops
    hm._check_budget(hm.count_params(hp), {})  # no refusal
    hm._check_flops(spaces.register_values(hp, hm.space, "cnn"))


def test_defaults_scale_with_the_pixel_count():
    assert default_max_params(64) == 2_000_000 and default_max_params(32) == 2_000_000
    assert default_max_params(128) == 8_000_000
    assert default_max_gflops(64) == 1.0 and default_max_gflops(224) == pytest.approx(12.25)
    explicit = resolve_budgets(SearchConfig(image_size=128, max_params=3000, max_gflops=0.0))
    assert explicit.max_params == 3000 and explicit.max_gflops == 0.0


def test_flops_match_a_hand_count_and_refuse_wide_full_resolution_convs():
    hm = spaces.CNNHyperModel((64, 64, 1), max_gflops=1.0)
    # Basic CNN: conv 3x3 1->32 at 64x64, conv 3x3 32->32 at 32x32, dense 16*16*32 -> 128 -> 1.
    want = 2 * (64 * 64 * 9 * 1 * 32 + 32 * 32 * 9 * 32 * 32 + 16 * 16 * 32 * 128 + 128)
    assert hm.gflops(kt.HyperParameters()) == pytest.approx(want / 1e9)
    wide = _hp(conv_blocks=4, conv_filters=32, filter_hierarchy="decreasing", convs_per_block=2)
    assert hm.gflops(wide) > 5
    with pytest.raises(kt.errors.FailedTrialError, match=r"GFLOPs per image, over the limit of 1"):
        hm.build(wide)
    ann = spaces.ANNHyperModel((16, 16, 1))
    assert ann.gflops(_hp(dense_layers=1, dense_units=32)) == pytest.approx(
        2 * (256 * 32 + 32) / 1e9)


def test_bad_max_gflops_is_refused_with_the_fix():
    with pytest.raises(spaces.SpaceError, match="--max-gflops"):
        spaces.CNNHyperModel((32, 32, 1), max_gflops=-1)
