"""Patient-grouped, stratified cross-validation folds and hold-outs.

Pure functions over label and group arrays: no images needed, so they can be checked (and
tested) on label arrays of any size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from data_pipeline.errors import DataError

HOLDOUT_FRACTION = 0.2  # k == 1: the validation share of the one hold-out


def patients_per_class(y: np.ndarray, groups: np.ndarray) -> dict[int, int]:
    """Distinct groups that have at least one image of each class."""
    y, groups = np.asarray(y), np.asarray(groups)
    return {int(c): int(np.unique(groups[y == c]).size) for c in np.unique(y)}


def check_folds(y: np.ndarray, groups: np.ndarray, k: int,
                class_names: Sequence[str] | None = None, what: str = "training data") -> None:
    """Checks that ``k`` folds are possible: every class has at least ``k`` patients (2 for k=1).

    Raises:
        DataError: ``k`` < 1, or a class with fewer patients than folds.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise DataError(
            f"--folds {k!r} is out of range: the number of folds must be an integer >= 1 "
            "(1 = one patient-grouped validation hold-out). Fix: pass --folds 3 or 5, say."
        )
    need = max(int(k), 2)
    for c, n in patients_per_class(y, groups).items():
        if n < need:
            name = class_names[c] if class_names is not None else f"label {c}"
            raise DataError(
                f"class {name!r} has {n} patient(s) in the {what}, fewer than the {need} "
                f"needed for --folds {k}: every fold needs at least one patient of each class "
                "in its validation part. Fix: lower --folds (at most "
                f"{min(patients_per_class(y, groups).values())}) or add images of more patients."
            )


def grouped_holdout(y: np.ndarray, groups: np.ndarray, fraction: float,
                    seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One patient-grouped, stratified hold-out of about ``fraction`` of the images per class.

    Each group goes with its majority class; per class, groups are shuffled (by ``seed``) and
    taken until the held-out image count is closest to ``fraction`` of that class, with at
    least one group held out and one kept.

    Returns:
        ``(keep_idx, holdout_idx)``, sorted int64 index arrays.
    """
    y, groups = np.asarray(y), np.asarray(groups)
    rng = np.random.default_rng(seed)
    uniq, inverse = np.unique(groups, return_inverse=True)
    sizes = np.bincount(inverse, minlength=uniq.size)
    counts = np.zeros((uniq.size, int(y.max()) + 1), dtype=np.int64)
    np.add.at(counts, (inverse, y.astype(np.int64)), 1)
    majority = counts.argmax(axis=1)
    held = np.zeros(uniq.size, dtype=bool)
    for c in np.unique(majority):
        members = np.flatnonzero(majority == c)
        members = members[rng.permutation(members.size)]
        target = fraction * sizes[members].sum()
        total = 0
        for i, g in enumerate(members[:-1]):  # always keep one group on the training side
            if i > 0 and abs(total + sizes[g] - target) > abs(total - target):
                break
            held[g] = True
            total += sizes[g]
    hold_mask = held[inverse]
    return np.flatnonzero(~hold_mask).astype(np.int64), np.flatnonzero(hold_mask).astype(np.int64)


def make_folds(y: np.ndarray, groups: np.ndarray, k: int,
               seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Patient-grouped stratified folds, deterministic by ``seed``.

    Args:
        y: Labels, shape (N,).
        groups: Patient group ids, shape (N,).
        k: Number of folds; 1 means one grouped stratified hold-out of 20%.
        seed: Shuffling seed.

    Returns:
        ``k`` pairs ``(train_idx, val_idx)`` of sorted int64 indices into ``y``; for k >= 2 every
        index is in exactly one ``val_idx`` and no group is on both sides of a fold.

    Raises:
        DataError: ``k`` < 1 or a class with fewer patients than ``k``.
    """
    y, groups = np.asarray(y), np.asarray(groups)
    check_folds(y, groups, k)
    if k == 1:
        return [grouped_holdout(y, groups, HOLDOUT_FRACTION, seed)]
    from sklearn.model_selection import StratifiedGroupKFold  # sklearn import is slow-ish

    splitter = StratifiedGroupKFold(n_splits=int(k), shuffle=True, random_state=seed)
    return [
        (np.sort(tr).astype(np.int64), np.sort(va).astype(np.int64))
        for tr, va in splitter.split(np.zeros(y.size), y, groups)
    ]
