"""The probe shifts: what each one changes, what it leaves alone, and that they are fixed."""

from __future__ import annotations

import numpy as np
import pytest

from data_pipeline import acquisition_batch, shifted_sets
from data_pipeline.shifts import border_masked, geometric_shifted, photometric_shifted


def _images(n=6, size=32, channels=1):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(n, size, size, channels), dtype=np.uint8)


def test_border_mask_replaces_the_frame_by_the_median_and_keeps_the_centre():
    x = _images()
    out = border_masked(x, 0.125)  # 4 px of 32
    assert out.shape == x.shape and out.dtype == x.dtype
    np.testing.assert_array_equal(out[:, 4:28, 4:28], x[:, 4:28, 4:28])
    for i in range(len(x)):
        med = np.median(x[i]).astype(np.uint8)
        frame = np.ones((32, 32), bool)
        frame[4:28, 4:28] = False
        assert np.all(out[i][frame] == med)
    with pytest.raises(ValueError, match="border fraction"):
        border_masked(x, 0.5)


def test_shifts_are_deterministic_change_the_images_and_keep_shape_and_range():
    x = _images(channels=3)
    for fn in (photometric_shifted, geometric_shifted):
        a, b = fn(x, seed=1), fn(x, seed=1)
        np.testing.assert_array_equal(a, b)
        assert a.shape == x.shape and a.dtype == np.uint8
        assert not np.array_equal(a, x)
        assert not np.array_equal(a, fn(x, seed=2))
    assert set(shifted_sets(x)) == {"border", "photometric", "geometric"}


def test_geometric_shift_is_small():
    # A smooth image moves by at most a few pixels: the shifted copy stays close to it.
    yy, xx = np.mgrid[0:64, 0:64]
    img = (127 + 100 * np.sin(xx / 10.0) * np.cos(yy / 13.0)).astype(np.uint8)[None, :, :, None]
    x = np.repeat(img, 20, axis=0)
    out = geometric_shifted(x)
    diff = np.abs(out.astype(float) - x.astype(float)).mean(axis=(1, 2, 3))
    unrelated = np.abs(x[0].astype(float) - x[0].astype(float).mean()).mean()
    assert np.all(diff < unrelated) and diff.mean() > 0


def test_acquisition_batch_from_file_names():
    assert acquisition_batch("train/NORMAL/IM-0115-0001.jpeg") == "IM"
    assert acquisition_batch("train/NORMAL/NORMAL2-IM-1427-0001.jpeg") == "NORMAL2-IM"
    assert acquisition_batch("person1_bacteria_1.jpeg") == "person"
    assert acquisition_batch("scan_0001.png") == ""


@pytest.mark.parametrize("shift", [photometric_shifted, geometric_shifted])
def test_strength_scales_the_same_draws(shift):
    rng = np.random.default_rng(3)
    x = rng.integers(30, 220, size=(6, 24, 24, 1)).astype(np.uint8)
    assert np.array_equal(shift(x, strength=1.0), shift(x))
    assert np.abs(shift(x, strength=0.0).astype(int) - x).max() <= 1  # identity, up to rounding
    mild = np.abs(shift(x, strength=0.5).astype(float) - x).mean()
    strong = np.abs(shift(x, strength=1.5).astype(float) - x).mean()
    assert 0 < mild < np.abs(shift(x).astype(float) - x).mean() < strong
    with pytest.raises(ValueError, match="strength"):
        shift(x, strength=-1.0)
