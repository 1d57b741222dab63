"""The held-out test split: the ``test/`` folder when present, else carved from train by patient.

The split is recorded by relative paths (``save_split``) so later steps (retrain, export, compare)
reuse exactly the same images even if they reload the data in another process.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from data_pipeline.errors import DataError
from data_pipeline.folds import grouped_holdout, patients_per_class

if TYPE_CHECKING:
    from data_pipeline.dataset import Dataset

SPLIT_FORMAT = 1

log = logging.getLogger(__name__)  # shown by the CLI, copied into search.log


@dataclass
class TestSplit:
    """Indices into a :class:`Dataset` for training (and CV) and for the final test.

    Images from the Kaggle ``val/`` folder are in neither. With a ``test/`` folder,
    ``dropped_from_train`` counts the ``train/`` images left out because their patient group
    (byte-identical duplicates merged) also appears in ``test/``.
    """

    __test__ = False  # not a pytest test class despite the name

    train_idx: np.ndarray
    test_idx: np.ndarray
    source: str  # "test_folder" | "carved"
    seed: int
    test_fraction: float
    dropped_from_train: int = 0


def check_test_fraction(test_fraction: float) -> None:
    """Raises DataError unless 0 < test_fraction < 1."""
    if not isinstance(test_fraction, (int, float)) or not 0.0 < float(test_fraction) < 1.0:
        raise DataError(
            f"--test-fraction {test_fraction!r} is out of range: the carved test share must be "
            "between 0 and 1 (exclusive). Fix: pass --test-fraction 0.15 (the default)."
        )


def _drop_test_groups(dataset: Dataset, train_idx: np.ndarray,
                      test_idx: np.ndarray) -> np.ndarray:
    """``train_idx`` without the images whose patient group also appears in the test images.

    Group ids are ``<class folder>/<patient>`` (the split folder is not part of them), and
    byte-identical files share one group, so the same patient (or the same file) in ``train/``
    and ``test/`` gets the same id and is caught here.
    """
    groups = np.asarray(dataset.groups)
    leak = np.isin(groups[train_idx], np.unique(groups[test_idx]))
    return train_idx[~leak].astype(np.int64)


def split_train_test(dataset: Dataset, *, test_fraction: float = 0.15, seed: int = 42) -> TestSplit:
    """The test split of a dataset.

    Args:
        dataset: A loaded dataset.
        test_fraction: Share of each class carved out when there is no ``test/`` folder.
        seed: Seed of the carve (ignored with a ``test/`` folder).

    Returns:
        ``test/`` images as the test split when the data has them (``source="test_folder"``),
        with every ``train/`` image of a patient (or duplicate file) that is also in ``test/``
        dropped from training (warned, counted in ``dropped_from_train``); otherwise a
        patient-grouped stratified hold-out of the train images (``"carved"``).

    Raises:
        DataError: ``test_fraction`` out of range, or a class with fewer than 2 patients to carve.
    """
    check_test_fraction(test_fraction)
    origin = np.asarray(dataset.origin)
    train_pool = np.flatnonzero(origin == "train")
    if (origin == "test").any():
        test_idx = np.flatnonzero(origin == "test").astype(np.int64)
        train_idx = _drop_test_groups(dataset, train_pool, test_idx)
        dropped = int(train_pool.size - train_idx.size)
        if dropped:
            log.warning(
                f"{dropped} train/ image(s) in {str(dataset.root)!r} belong to patients (or are "
                "byte-identical copies of files) that are also in test/; they are left out of "
                "training so the test score is not inflated.")
        return TestSplit(train_idx, test_idx, "test_folder", seed, float(test_fraction), dropped)
    y, groups = dataset.y[train_pool], dataset.groups[train_pool]
    for c, n in patients_per_class(y, groups).items():
        if n < 2:
            raise DataError(
                f"class {dataset.class_names[c]!r} in {str(dataset.root)!r} has {n} patient, "
                "too few to carve a patient-grouped test split (need 2+). Fix: add images of "
                "more patients, or provide a test/ folder next to train/."
            )
    keep, hold = grouped_holdout(y, groups, float(test_fraction), seed)
    return TestSplit(train_pool[keep], train_pool[hold], "carved", seed, float(test_fraction))


def save_split(split: TestSplit, dataset: Dataset, path: str | os.PathLike) -> None:
    """Records the test split as JSON: relative paths of the test images, seed, fraction, source."""
    record = {
        "format": SPLIT_FORMAT,
        "source": split.source,
        "seed": int(split.seed),
        "test_fraction": float(split.test_fraction),
        "fingerprint": dataset.fingerprint,
        "n_train": int(len(split.train_idx)),
        "dropped_from_train": int(split.dropped_from_train),
        "test": [dataset.paths[i] for i in split.test_idx],
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, path)


def load_split(path: str | os.PathLike, dataset: Dataset) -> TestSplit:
    """Rebuilds a recorded split on a (re)loaded dataset.

    Test images are matched by relative path; every other non-``val/`` image is train, except
    that a record carrying ``dropped_from_train`` (written since that rule) again leaves out the
    train images whose patient group is in the test split. Older records keep their train pool as
    it was, so resuming an older search sees the same folds. Recorded test images that are no
    longer in the dataset (deleted, or now skipped as unreadable) are dropped.

    Raises:
        DataError: The file is missing or malformed, or none of its test images are in the data.
    """
    path = Path(path)
    try:
        record = json.loads(path.read_text())
        test_paths = list(record["test"])
        source, seed, fraction = record["source"], int(record["seed"]), float(record["test_fraction"])
    except FileNotFoundError:
        raise DataError(f"split file {str(path)!r} does not exist. Fix: check the run folder, "
                        "or start a new run so the split is recorded.") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"split file {str(path)!r} is not a valid split record ({err}). Fix: "
                        "restore it from a backup or start a new run.") from None
    index = {p: i for i, p in enumerate(dataset.paths)}
    test_idx = np.array(sorted(index[p] for p in test_paths if p in index), dtype=np.int64)
    if test_paths and test_idx.size == 0:
        raise DataError(
            f"none of the {len(test_paths)} test images recorded in {str(path)!r} are in "
            f"{str(dataset.root)!r}: the split belongs to other data. Fix: pass the --data "
            "folder the run was started with."
        )
    is_test = np.zeros(len(dataset.paths), dtype=bool)
    is_test[test_idx] = True
    train_idx = np.flatnonzero(~is_test & (np.asarray(dataset.origin) != "val")).astype(np.int64)
    dropped = 0
    if "dropped_from_train" in record:
        pool = train_idx
        train_idx = _drop_test_groups(dataset, pool, test_idx)
        dropped = int(pool.size - train_idx.size)
    return TestSplit(train_idx, test_idx, source, seed, fraction, dropped)
