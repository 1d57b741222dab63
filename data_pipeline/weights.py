"""Class weights and the initial output bias for imbalanced data (from the notes)."""

from __future__ import annotations

import math

import numpy as np


def class_weights(y: np.ndarray) -> dict[int, float]:
    """Balanced class weights ``w_c = N / (n_classes * N_c)`` over the classes present in ``y``.

    With two classes this is the notes' ``N / (2 N_c)``: the weighted classes contribute equally
    to the loss.
    """
    y = np.asarray(y).astype(np.int64).ravel()
    if y.size == 0:
        raise ValueError("class_weights needs at least one label, got an empty array")
    classes, counts = np.unique(y, return_counts=True)
    return {int(c): float(y.size / (len(classes) * n)) for c, n in zip(classes, counts)}


def sample_weights(y: np.ndarray, class_weight: dict[int, float]) -> np.ndarray:
    """Per-image float32 weights ``class_weight[y_i]`` (0 for a label the dict lacks).

    ``fit(sample_weight=...)`` takes them on every Keras backend, where ``fit(class_weight=...)``
    is refused for some inputs on some backends.
    """
    y = np.asarray(y).astype(np.int64).ravel()
    lut = np.zeros(int(y.max(initial=0)) + 1, dtype=np.float32)
    for c, w in class_weight.items():
        if 0 <= int(c) < lut.size:
            lut[int(c)] = w
    return lut[y]


def initial_bias(y: np.ndarray) -> float:
    """The notes' initial output bias ``log(pos / neg)`` for a sigmoid output.

    Starting there makes the first predictions equal to the base rate, so the first epochs are
    not spent learning the imbalance.

    Raises:
        ValueError: ``y`` is not binary (0/1) or one class is absent.
    """
    y = np.asarray(y).astype(np.int64).ravel()
    pos, neg = int((y == 1).sum()), int((y == 0).sum())
    if pos + neg != y.size or pos == 0 or neg == 0:
        raise ValueError(
            f"initial_bias needs binary labels with both classes present; got {neg} zeros, "
            f"{pos} ones and {y.size - pos - neg} other values"
        )
    return math.log(pos / neg)
