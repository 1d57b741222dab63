"""Images on disk -> arrays, patient groups, splits, folds, class weights, augmentation, batches.

Knows nothing about tuning and never imports TensorFlow; Keras is imported lazily (by
``make_augmentation`` and on first access to ``ArrayBatches``), so importing this package is cheap.
"""

from __future__ import annotations

from typing import Any

from data_pipeline.augment import make_augmentation
from data_pipeline.dataset import Dataset, load_dataset
from data_pipeline.discovery import data_fingerprint, discover
from data_pipeline.errors import DataError, UserError
from data_pipeline.folds import check_folds, make_folds
from data_pipeline.groups import acquisition_batch, patient_id
from data_pipeline.shifts import SHIFT_NAMES, shifted_sets
from data_pipeline.splits import TestSplit, load_split, save_split, split_train_test
from data_pipeline.synthetic import default_data_dir, generate_synthetic
from data_pipeline.weights import class_weights, initial_bias, sample_weights

__all__ = [
    "SHIFT_NAMES", "ArrayBatches", "DataError", "Dataset", "TestSplit", "UserError", "check_folds",
    "class_weights", "data_fingerprint", "default_data_dir", "discover", "generate_synthetic",
    "initial_bias", "load_dataset", "load_split", "make_augmentation", "acquisition_batch", "shifted_sets", "make_folds", "patient_id",
    "sample_weights", "save_split", "split_train_test",
]


def __getattr__(name: str) -> Any:
    # ArrayBatches subclasses keras.utils.PyDataset: built on first access (PEP 562).
    if name == "ArrayBatches":
        from data_pipeline import batches

        return batches.ArrayBatches
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
