"""Shortcut probes on constructed images where a border cue decides the label.

A scorer that reads only the film's border is perfect on clean images, like a shortcut-taking
model on one folder's folds, and must collapse to chance once the border is masked; a scorer
that reads the centre keeps its AUC. The worst-batch probe must expose a cue that holds for one
acquisition batch only.
"""

from __future__ import annotations

import numpy as np

from data_pipeline import shifted_sets
from search.fit.probes import PROBE_METRICS, auc, batch_auc, epoch_metric, probe_scores

FRAME = 2  # of 32 px: inside the probes' 12% frame (4 px), and too thin to move the median


class Scorer:
    """A stand-in model: ``predict`` returns a score read from one image region."""

    def __init__(self, region: str):
        self.region = region
        self.calls: list[tuple[int, int]] = []  # (rows, batch_size) of each predict call

    def predict(self, x, batch_size=None, verbose=0):
        self.calls.append((len(x), batch_size))
        return self.predict_on_batch(x)

    def predict_on_batch(self, xb):
        xb = np.asarray(xb, dtype=np.float32)
        if self.region == "border":
            frame = np.ones(xb.shape[1:3], bool)
            frame[FRAME:-FRAME, FRAME:-FRAME] = False
            value = xb[:, frame].mean(axis=(1, 2))
        else:
            value = xb[:, 12:20, 12:20].mean(axis=(1, 2, 3))
        return (value / 255.0)[:, None]


def _shortcut_images(n=80, seed=0):
    """Positives: a bright centre blob and a bright frame; negatives: neither.

    Both cues separate the classes perfectly on clean images. The background is flat, so the
    median that replaces the masked frame is the same for both classes.
    """
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = np.full((n, 32, 32, 1), 80, dtype=np.uint8)
    for i in np.flatnonzero(y == 1):
        x[i, 10:22, 10:22] = rng.integers(180, 230)
        x[i, :FRAME], x[i, -FRAME:], x[i, :, :FRAME], x[i, :, -FRAME:] = 160, 160, 160, 160
    return x, y


def test_border_probe_catches_a_border_reading_model_and_spares_a_lung_reading_one():
    x, y = _shortcut_images()
    sets = shifted_sets(x)
    border = probe_scores(Scorer("border"), x, y, sets)
    centre = probe_scores(Scorer("centre"), x, y, sets)
    assert set(border) == {"val_auc"} | {m for m in PROBE_METRICS if m != "val_auc_batch"}
    assert border["val_auc_border"] < 0.7 and border["val_auc_robust"] < 0.7
    assert centre["val_auc_border"] > 0.95 and centre["val_auc_robust"] > 0.9
    assert border["val_auc_robust"] == min(border.values())


def test_batch_probe_finds_a_cue_that_only_one_acquisition_batch_carries():
    rng = np.random.default_rng(1)
    y = np.array([0] * 40 + [1] * 40)
    batches = np.array(["IM"] * 20 + ["NORMAL2-IM"] * 20 + ["person"] * 40)
    # NORMAL2 films score low (easy), IM films overlap with the positives.
    scores = np.concatenate([rng.uniform(0.3, 0.8, 20), rng.uniform(0.0, 0.2, 20),
                             rng.uniform(0.5, 1.0, 40)])
    worst = batch_auc(y, scores, batches)
    assert worst is not None and worst < 0.9
    assert batch_auc(y, scores, np.array(["IM"] * 80)) is None  # one batch: no estimate
    assert batch_auc(y, scores, None) is None


def test_probe_objectives_choose_epochs_on_clean_auc():
    assert epoch_metric("val_auc_robust") == "val_auc"
    assert epoch_metric("val_auc_geometric") == "val_auc"
    assert epoch_metric("val_loss") == "val_loss"


def test_recorded_clean_auc_and_robust_minimum_use_one_definition():
    # Scores with ties and many distinct values: Keras' 200-threshold AUC would differ from the
    # exact one, so the clean value must come from the same (exact) computation as the probes.
    x, y = _shortcut_images()
    out = probe_scores(Scorer("centre"), x, y, shifted_sets(x))
    clean = Scorer("centre").predict_on_batch(x).ravel()
    assert out["val_auc"] == auc(y, clean)
    assert out["val_auc_robust"] <= out["val_auc"]


class _Strategy:
    num_replicas_in_sync = 3


def test_predict_scores_uses_whole_batches_divisible_by_the_replicas():
    """Odd sizes are padded to whole batches (a multiple of the replica count) and the
    padding's scores dropped: each image gets its own score, once."""
    from search.fit.probes import predict_scores

    x, _ = _shortcut_images(n=37)
    model = Scorer("centre")
    expected = model.predict_on_batch(x).ravel()
    model.calls.clear()
    scores = predict_scores(model, x, batch_size=8)
    assert np.allclose(scores, expected) and len(scores) == 37
    assert model.calls == [(40, 8)]
    model._distribute_strategy = _Strategy()  # built under a 3-replica MirroredStrategy
    model.calls.clear()
    assert np.allclose(predict_scores(model, x, batch_size=8), expected)
    rows, size = model.calls[0]
    assert size % 3 == 0 and rows % size == 0 and rows >= 37
