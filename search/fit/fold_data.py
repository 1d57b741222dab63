"""The images a search trains on, split into its folds, and each fold's shifted validation copies
(built once per fold and shared by every trial's probes)."""

from __future__ import annotations

import numpy as np


class FoldData:
    """The training part of the data and its folds (indices into ``x``).

    Args:
        x: uint8 images ``(N, S, S, C)`` (test images already removed).
        y: int labels ``(N,)``.
        folds: ``[(train_idx, val_idx), ...]`` from ``data_pipeline.make_folds``.
        batches: acquisition batch of each image (``data_pipeline.acquisition_batch``) for the
            per-batch probe, or None.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]],
                 batches: np.ndarray | None = None):
        self.x, self.y, self.folds, self.batches = x, y, folds, batches
        self._shifted: dict[int, dict[str, np.ndarray]] = {}

    @property
    def probes_enabled(self) -> bool:
        """Probes score one sigmoid output: two-class data only."""
        return int(self.y.max(initial=0)) <= 1

    def probe_data(self, k: int) -> tuple[dict[str, np.ndarray], np.ndarray | None] | None:
        """Fold ``k``'s shifted validation images (built once, reused by every trial) and the
        acquisition batches of its validation images; None when probes do not apply."""
        if not self.probes_enabled:
            return None
        if k not in self._shifted:
            from data_pipeline import shifted_sets

            self._shifted[k] = shifted_sets(self.x[self.folds[k][1]])
        batches = None if self.batches is None else self.batches[self.folds[k][1]]
        return self._shifted[k], batches
