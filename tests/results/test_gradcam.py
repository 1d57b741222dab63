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
