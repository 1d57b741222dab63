"""Grad-CAM: example picking, heatmap shape/range, and the degrade path for non-conv models."""

from __future__ import annotations

import numpy as np
import pytest

from results.report.gradcam import GradCamUnavailable, grad_cam, pick_examples


def test_pick_examples_orders_missed_positives_first():
    y = np.array([1, 1, 0, 0, 1, 0])
    p = np.array([0.9, 0.1, 0.2, 0.95, 0.3, 0.6])
    picks = pick_examples(y, p, 0.5, n_each=2)
    assert picks[:2] == [(0, "correct"), (2, "correct")]
    wrong = [i for i, kind in picks if kind == "wrong"]
    assert wrong == [1, 4]  # missed pneumonia before false alarms


def test_gradcam_heatmaps_and_dense_model_degrades():
    import keras

    inp = keras.Input((12, 12, 1))
    x = keras.layers.Rescaling(1 / 255)(inp)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.Flatten()(x)
    cnn = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(x))
    imgs = np.random.default_rng(0).integers(0, 255, (3, 12, 12, 1)).astype("uint8")
    res = grad_cam(cnn, imgs)
    assert res.heatmaps.shape == (3, 12, 12)
    assert res.heatmaps.min() >= 0 and res.heatmaps.max() <= 1
    dense = keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(1, activation="sigmoid")])
    with pytest.raises(GradCamUnavailable, match="no convolution"):
        grad_cam(dense, imgs)


def test_gradcam_reads_a_transfer_model_at_its_backbones_last_convolution():
    import keras_tuner as kt

    from results.report.compare import explained_model
    from spaces.transfer import TransferHyperModel

    hp = kt.HyperParameters()
    hp.Fixed("backbone", "mobilenetv3small")
    model = TransferHyperModel((32, 32, 1), weights=None).build(hp)
    # The nested backbone is part of one model, not an ensemble member.
    assert explained_model(model) == (model, None)
    imgs = np.random.default_rng(1).integers(0, 255, (2, 32, 32, 1)).astype("uint8")
    res = grad_cam(model, imgs)
    assert res.layer.startswith("backbone/") and res.heatmaps.shape == (2, 32, 32)
    assert np.all(np.isfinite(res.heatmaps)) and res.heatmaps.min() >= 0


def _conv_model(size: int, pools: int):
    import keras

    inp = keras.Input((size, size, 1))
    x = keras.layers.Rescaling(1 / 255)(inp)
    for _ in range(pools):
        x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(x))


def test_the_border_share_is_refused_on_a_map_too_coarse_to_hold_a_frame():
    """A 2x2 or 4x4 last map (a transfer backbone at 64 or 128 px) cannot tell the film's 12%
    frame from the lungs: no border share, a note saying why, and only the AUC drop flags."""
    import data_pipeline
    from results.report.compare import shortcut_check
    from results.report.gradcam import MIN_BORDER_MAP_SIDE, border_map_note

    rng = np.random.default_rng(2)
    x = rng.integers(0, 255, (12, 32, 32, 1)).astype("uint8")
    y = np.arange(12) % 2
    shifted = data_pipeline.shifted_sets(x)
    for pools, side in ((3, 4), (2, 8)):
        model = _conv_model(32, pools)
        assert grad_cam(model, x[:2]).map_side == side
        prob = np.asarray(model.predict(x.astype("float32"), verbose=0)).reshape(-1)
        out = shortcut_check(model, x, y, shifted, cnn=True, prob=prob, n_cam=12)
        if side < MIN_BORDER_MAP_SIDE:
            assert out["border_share"] is None and out["border_share_normal"] is None
            assert "too coarse" in out["note"] and f"{side}x{side}" in out["note"]
        else:
            assert out["border_share"] is not None and out["note"] is None
    assert border_map_note(MIN_BORDER_MAP_SIDE) is None and border_map_note(2) is not None
