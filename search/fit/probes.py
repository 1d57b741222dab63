"""Shortcut probes: a fold model's AUC on shifted copies of its validation images.

Patient-grouped folds from one folder share its acquisition cues, so clean validation AUC
saturates near 0.99 and cannot tell a model that reads the lungs from one that reads the film's
border or exposure. The probes score each fold model, at its restored best epoch, on the
shifted copies of ``data_pipeline.shifts``:

- ``val_auc_border``: the outer frame replaced by the image median;
- ``val_auc_photometric``: per-image gamma, contrast and brightness changes;
- ``val_auc_geometric``: per-image small rotation, translation and zoom;
- ``val_auc_batch``: the worst AUC of one acquisition batch (``IM-*`` vs ``NORMAL2-IM-*``
  NORMAL films) against the other class, from the clean predictions; absent when the file
  names mark fewer than two batches;
- ``val_auc_robust``: the worst of the clean AUC and every probe above.

All of them, and the clean ``val_auc`` that :func:`probe_scores` returns with them, are the exact
ROC-AUC (scikit-learn) of the restored model's scores: the fold record's ``val_auc`` is that one,
not Keras' 200-threshold estimate at the best epoch (which stays in the per-epoch history, where
early stopping reads it), so ``val_auc_robust`` never exceeds the recorded ``val_auc``.

Each is a valid ``--objective``; each fold record gives their cost (``probe_seconds``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from data_pipeline.shifts import SHIFT_NAMES
from spaces.metrics import PROBE_OBJECTIVES

CLEAN = "val_auc"
BATCH = "val_auc_batch"
ROBUST = "val_auc_robust"
SHIFT_METRICS = {f"val_auc_{name}": name for name in SHIFT_NAMES}
PROBE_METRICS = PROBE_OBJECTIVES
assert set(PROBE_METRICS) == {*SHIFT_METRICS, BATCH, ROBUST}
MIN_BATCH_IMAGES = 10  # a batch with fewer validation images gives too noisy an AUC


def epoch_metric(objective: str) -> str:
    """The per-epoch metric that early stopping and best-epoch restore follow for ``objective``.

    Probes cost a pass over every shifted copy, so they are measured once per fold, at the
    restored epoch, not every epoch; the epoch is chosen on the clean ``val_auc``.
    """
    return CLEAN if objective in PROBE_METRICS else objective


def auc(y: np.ndarray, scores: np.ndarray) -> float:
    """ROC-AUC of ``scores`` for 0/1 labels ``y``; NaN when ``y`` holds one class only."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y).astype(int).ravel()
    if y.min(initial=0) == y.max(initial=0):
        return float("nan")
    return float(roc_auc_score(y, np.asarray(scores, dtype=float).ravel()))


def batch_counts(y: np.ndarray, batches: np.ndarray) -> dict[int, dict[str, int]]:
    """Images per acquisition batch of each class (``{class: {batch: count}}``)."""
    y, batches = np.asarray(y).astype(int).ravel(), np.asarray(batches)
    return {cls: {str(b): int(np.sum((y == cls) & (batches == b)))
                  for b in np.unique(batches[y == cls])} for cls in (0, 1)}


def batch_measurable(y: np.ndarray, batches: np.ndarray) -> bool:
    """True when :func:`batch_auc` gives a value: a class with two batches of
    ``MIN_BATCH_IMAGES`` or more (the rule the search's pre-check applies to every fold)."""
    return any(sum(n >= MIN_BATCH_IMAGES for n in counts.values()) >= 2
               for counts in batch_counts(y, batches).values())


def batch_auc(y: np.ndarray, scores: np.ndarray, batches: np.ndarray | None) -> float | None:
    """Worst AUC of one acquisition batch of a class against all images of the other class.

    Returns:
        The worst such AUC, or None when no class has two batches of ``MIN_BATCH_IMAGES``.
    """
    if batches is None:
        return None
    y, batches = np.asarray(y).astype(int).ravel(), np.asarray(batches)
    worst = None
    for cls, counts in batch_counts(y, batches).items():
        names = [b for b, n in counts.items() if n >= MIN_BATCH_IMAGES]
        if len(names) < 2:
            continue
        for b in names:
            keep = (y != cls) | (batches == b)
            value = auc(y[keep], np.asarray(scores).ravel()[keep])
            worst = value if worst is None or value < worst else worst
    return worst


def replica_count(model: Any) -> int:
    """How many devices one batch of ``model`` is split over (1 without data parallelism).

    TensorFlow: the ``MirroredStrategy`` the model was built under; JAX: the global Keras
    ``DataParallel`` distribution (``search.runtime.devices.setup_data_parallel``).
    """
    from search.runtime import compat

    strategy = compat.model_distribute_strategy(model)
    n = int(getattr(strategy, "num_replicas_in_sync", 1) or 1)
    try:
        import keras

        distribution = keras.distribution.distribution()
    except (ImportError, AttributeError):
        distribution = None
    mesh = getattr(distribution, "device_mesh", None)
    if mesh is not None:
        n = max(n, int(np.size(mesh.devices)))
    return max(1, n)


def predict_scores(model: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Positive-class probabilities of ``model`` for uint8 images (one sigmoid output).

    Every batch has the same size, a multiple of the replica count: the images are padded with
    zeros up to a whole number of batches and the padding's scores dropped. ``model.predict``
    splits each batch over the replicas and gathers the results in order; ``predict_on_batch``
    under ``MirroredStrategy`` hands the whole batch to each replica and concatenates their
    outputs (twice the rows on two devices, Keras 3.15), and JAX cannot shard a last batch
    that does not divide by the device count. One batch shape also means one compiled
    prediction function per model, not one per odd last chunk.
    """
    n = len(x)
    if n == 0:
        return np.zeros(0)
    replicas = replica_count(model)
    size = -(-min(batch_size, n) // replicas) * replicas
    padded = -(-n // size) * size
    xb = np.zeros((padded, *np.shape(x)[1:]), dtype=np.float32)
    xb[:n] = x
    out = np.asarray(model.predict(xb, batch_size=size, verbose=0), dtype=np.float64)
    if out.shape[0] != padded:  # never silently misalign scores and labels
        raise RuntimeError(f"prediction returned {out.shape[0]} rows for {padded} images")
    return out.reshape(padded, -1)[:n, -1]


def probe_scores(model: Any, x_val: np.ndarray, y_val: np.ndarray,
                 shifted: dict[str, np.ndarray], batches: np.ndarray | None = None,
                 clean: np.ndarray | None = None,
                 keep: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """The probe AUCs of one fold model.

    Args:
        model: A compiled or loaded Keras model with one sigmoid output.
        x_val: The fold's clean validation images (uint8, raw pixels).
        y_val: Their 0/1 labels.
        shifted: ``data_pipeline.shifted_sets(x_val)`` (computed once per fold and reused).
        batches: Acquisition batch per validation image, or None.
        clean: The model's scores on ``x_val`` when the caller has them already (saves a pass).
        keep: When given, filled with the raw scores behind each AUC (``{"val_auc": clean,
            "val_auc_<shift>": scores on that copy}``), for the out-of-fold record
            (``search/store/oof.py``) without a second pass.

    Returns:
        ``{"val_auc", "val_auc_border", "val_auc_photometric", "val_auc_geometric",
        ["val_auc_batch"], "val_auc_robust"}``: ``val_auc`` is the exact clean AUC of the same
        predictions, which the robust minimum includes; the caller records it in place of
        Keras' approximate one so that the two use one definition.
    """
    if clean is None:
        clean = predict_scores(model, x_val)
    raw = {CLEAN: clean, **{metric: predict_scores(model, shifted[name])
                            for metric, name in SHIFT_METRICS.items()}}
    if keep is not None:
        keep.update(raw)
    out: dict[str, float] = {metric: auc(y_val, raw[metric]) for metric in SHIFT_METRICS}
    by_batch = batch_auc(y_val, clean, batches)
    if by_batch is not None:
        out[BATCH] = by_batch
    values = [v for v in [auc(y_val, clean), *out.values()] if np.isfinite(v)]
    out[ROBUST] = float(min(values)) if values else float("nan")
    return {CLEAN: auc(y_val, clean), **out}


def objective_scores(model: Any, objective: str, x_val: np.ndarray, y_val: np.ndarray,
                     shifted: dict[str, np.ndarray], batches: np.ndarray | None = None
                     ) -> dict[str, float]:
    """The probe ``objective`` of ``model``'s current weights, at the least cost.

    A ladder rung (search.schedule.ladder) needs only the objective: one shifted probe is one pass
    over
    its copy of the validation images; ``val_auc_robust`` and ``val_auc_batch`` need every
    pass (:func:`probe_scores`).
    """
    if objective in SHIFT_METRICS:
        return {objective: auc(y_val, predict_scores(model, shifted[SHIFT_METRICS[objective]]))}
    return probe_scores(model, x_val, y_val, shifted, batches)
