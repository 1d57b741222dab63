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
