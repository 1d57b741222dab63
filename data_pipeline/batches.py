"""Batches from in-memory arrays for ``model.fit``, under every Keras backend.

``ArrayBatches`` is a real ``keras.utils.PyDataset`` subclass, created when first accessed
(``from data_pipeline import ArrayBatches``) so that importing the package stays Keras-free.

A ``keras.utils.PyDataset`` rather than ``tf.data``: it works unchanged with
``KERAS_BACKEND=tensorflow``, ``jax`` and ``torch``, and needs no TensorFlow on the latter two.

The search does not train through it: ``spaces``' ``fit`` hands the uint8 arrays to Keras' own
array adapter, which on 2 CPU cores trains an epoch 1.75x faster (training steps of ~75 ms
against ~150 ms fed by this class; ``benchmarks/fit_feed.py``).
It remains for code that wants explicit, seeded batches (benchmarks, custom loops).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from data_pipeline.weights import sample_weights


def _pydataset_base() -> type:
    import keras  # lazily, see ARCHITECTURE.md

    return keras.utils.PyDataset


_IMPL: type | None = None


def _array_batches_class() -> type:
    global _IMPL
    if _IMPL is None:
        base = _pydataset_base()

        class ArrayBatches(base):  # type: ignore[misc, valid-type]
            __doc__ = _DOC

            def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, *,
                         shuffle: bool = False, seed: int | None = None, augment: Any = None,
                         class_weight: dict[int, float] | None = None, **kwargs: Any) -> None:
                super().__init__(**kwargs)
                if len(x) != len(y):
                    raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
                if int(batch_size) < 1:
                    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
                self.x, self.y = np.asarray(x), np.asarray(y)
                self.batch_size = int(batch_size)
                self.shuffle, self.augment = shuffle, augment
                self.class_weight = class_weight
                self._rng = np.random.default_rng(seed)
                self._order = np.arange(len(x))
                if shuffle:
                    self._order = self._rng.permutation(len(x))
                if class_weight is not None:
                    self._weights = sample_weights(self.y, class_weight)

            def __len__(self) -> int:
                return math.ceil(len(self.x) / self.batch_size)

            def __getitem__(self, index: int) -> tuple[np.ndarray, ...]:
                if not 0 <= index < len(self):
                    raise IndexError(f"batch {index} out of range (0..{len(self) - 1})")
                idx = np.sort(self._order[index * self.batch_size:(index + 1) * self.batch_size])
                xb = self.x[idx].astype(np.float32)
                if self.augment is not None:
                    import keras

                    xb = keras.ops.convert_to_numpy(self.augment(xb, training=True))
                    xb = xb.astype(np.float32, copy=False)
                yb = self.y[idx].astype(np.float32)
                if self.class_weight is not None:
                    return xb, yb, self._weights[idx]
                return xb, yb

            def on_epoch_end(self) -> None:
                if self.shuffle:
                    self._order = self._rng.permutation(len(self.x))

        ArrayBatches.__module__ = __name__
        _IMPL = ArrayBatches
    return _IMPL


_DOC = """Batches ``(x_float32, y)`` or ``(x_float32, y, sample_weight)`` from uint8 arrays.

    Args:
        x: Images ``(N, S, S, C)``, uint8 (raw 0..255; models rescale inside).
        y: Labels ``(N,)``; returned as float32.
        batch_size: Images per batch; the last batch may be smaller.
        shuffle: Reshuffle the order every epoch (by ``seed``).
        seed: Seed of the shuffling.
        augment: A Keras model/layer applied with ``training=True``; pass it for training
            batches only.
        class_weight: ``{label: weight}``; adds per-image sample weights (works on every backend,
            unlike ``fit(class_weight=...)`` with a dataset on some).
        **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size`` for PyDataset.
    """


def __getattr__(name: str) -> Any:
    # The class derives from keras.utils.PyDataset, so it is built on first access (PEP 562):
    # importing data_pipeline must not import Keras and its backend.
    if name == "ArrayBatches":
        return _array_batches_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
