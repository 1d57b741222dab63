"""Out-of-fold predictions: each finished fold model's scores on its own validation images.

Every trial of a run is cross-validated on the same patient-grouped folds, so fold ``k`` of every
trial scored the very same validation images. Kept per fold, next to the fold's weights, these
scores let the results side choose an ensemble of finished configurations (Caruana's greedy
selection, ``results/selection.py``) from files alone, without loading a model:

``trial_<id>/oof_fold<k>.npz`` (NumPy ``savez_compressed``, written atomically before
``fold<k>.json``, so a finished fold always has one; a resumed search never retrains a finished
fold, so its file stays as it was):

- ``y``: the fold's 0/1 validation labels, in the fold's order;
- ``val_auc``: the clean scores (the restored best weights, as ``fold<k>.weights.h5``);
- ``val_auc_border``, ``val_auc_photometric``, ``val_auc_geometric``: the scores on the shifted
  copies the probes use (``data_pipeline.shifts``; the objective is one of them or the clean
  one, and keeping all of them costs a few kilobytes);
- ``batches``: the acquisition batch of each image (``val_auc_batch``), when known;
- ``digest``: SHA-256 of the validation images' bytes: two trials' files align image by image
  only when their digests match (same data, same folds).

Two-class runs only (the probes score one sigmoid output); other runs keep no OOF files.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CLEAN = "val_auc"
SIGNALS = ("val_auc", "val_auc_border", "val_auc_photometric", "val_auc_geometric")


@dataclass
class FoldOOF:
    """One fold's out-of-fold record (see the module docstring)."""

    fold: int
    y: np.ndarray
    digest: str
    scores: dict[str, np.ndarray]
    batches: np.ndarray | None = field(default=None)


def oof_path(trial_dir: Path, fold: int) -> Path:
    """Path of a fold's out-of-fold predictions."""
    return Path(trial_dir) / f"oof_fold{fold}.npz"


def images_digest(x: np.ndarray) -> str:
    """SHA-256 of the images' bytes (with their shape), to check that two files align."""
    x = np.ascontiguousarray(x)
    h = hashlib.sha256(repr((x.shape, str(x.dtype))).encode())
    h.update(x.tobytes())
    return h.hexdigest()


def save_fold_oof(trial_dir: Path, fold: int, *, x_va: np.ndarray, y_va: np.ndarray,
                  scores: dict[str, np.ndarray], batches: np.ndarray | None = None) -> Path:
    """Writes ``oof_fold<k>.npz`` atomically (temporary file, then ``os.replace``).

    Args:
        trial_dir: The trial folder.
        fold: The fold index.
        x_va: The fold's clean validation images (only their digest is kept).
        y_va: Their labels.
        scores: ``{signal: scores}`` for the signals in :data:`SIGNALS` that were measured.
        batches: Acquisition batch per image, or None.

    Returns:
        The written path.
    """
    path = oof_path(trial_dir, fold)
    arrays = {name: np.asarray(values, dtype=np.float64).reshape(-1)
              for name, values in scores.items() if name in SIGNALS}
    arrays["y"] = np.asarray(y_va).astype(np.int8).reshape(-1)
    arrays["digest"] = np.asarray(images_digest(x_va))
    if batches is not None:
        arrays["batches"] = np.asarray(batches).astype(str)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    try:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # never leave a half-written file behind
        raise
    return path


def load_fold_oof(trial_dir: Path, fold: int) -> FoldOOF | None:
    """The fold's record, or None when the file is missing or unreadable."""
    path = oof_path(trial_dir, fold)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            scores = {name: np.asarray(data[name], dtype=np.float64)
                      for name in SIGNALS if name in data.files}
            batches = np.asarray(data["batches"]) if "batches" in data.files else None
            return FoldOOF(fold=fold, y=np.asarray(data["y"]).astype(int),
                           digest=str(data["digest"]), scores=scores, batches=batches)
    except (OSError, ValueError, KeyError):
        return None  # damaged (e.g. a copy cut short): the trial is treated as having none


def load_trial_oof(trial_dir: Path, n_folds: int) -> list[FoldOOF] | None:
    """Every fold's record of a trial in fold order, or None when any fold has none."""
    out = [load_fold_oof(trial_dir, k) for k in range(n_folds)]
    return None if any(f is None for f in out) else out  # type: ignore[return-value]
