"""Patient groups from file names, merged across byte-identical duplicates.

The Kaggle chest X-ray files carry the patient id in their names: ``person<ID>_bacteria_<n>``,
``person<ID>_virus_<n>`` (PNEUMONIA), ``IM-<ID>-<n>`` and ``NORMAL2-IM-<ID>-<n>`` (NORMAL). Images
of one patient must stay on one side of every split, or validation scores are inflated by
near-identical films. A name that matches none of these is its own group.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

# Order matters: NORMAL2-IM-... must not be read as IM-...; ids compare as integers
# (IM-0115 and IM-115 are the same patient). The scheme stays in the id so that person12 and
# IM-0012 never collide.
_PATTERNS = (
    ("NORMAL2-IM-", re.compile(r"^NORMAL2-IM-(\d+)(?:[-_.]|$)", re.IGNORECASE)),
    ("IM-", re.compile(r"^IM-(\d+)(?:[-_.]|$)", re.IGNORECASE)),
    ("person", re.compile(r"^person(\d+)(?:[-_.]|$)", re.IGNORECASE)),
)


def patient_id(filename: str) -> str | None:
    """The patient id in a file name (``"person447"``, ``"IM-115"``, ``"NORMAL2-IM-1427"``), or None."""
    name = filename.rsplit("/", 1)[-1]
    for scheme, pattern in _PATTERNS:
        match = pattern.match(name)
        if match:
            return f"{scheme}{int(match.group(1))}"
    return None


def acquisition_batch(filename: str) -> str:
    """The acquisition batch a file name marks: ``"NORMAL2-IM"``, ``"IM"``, ``"person"`` or ``""``.

    The Kaggle training NORMAL films come in two batches named ``IM-*`` and ``NORMAL2-IM-*``;
    the shortcut probes score each batch separately (``search/fit/probes.py``).
    """
    name = filename.rsplit("/", 1)[-1]
    for scheme, pattern in _PATTERNS:
        if pattern.match(name):
            return scheme.rstrip("-")
    return ""


def name_groups(paths: Sequence[str], class_names: Sequence[str]) -> np.ndarray:
    """Group ids from file names, prefixed by the class folder.

    Args:
        paths: Relative paths (``"train/NORMAL/IM-0115-0001.jpeg"``).
        class_names: The class folder of each path.

    Returns:
        str array: ``"<CLASS>/<patient id>"``, or ``"<CLASS>/file:<path>"`` for an unparsed name.
    """
    out = []
    for path, cls in zip(paths, class_names):
        pid = patient_id(path)
        out.append(f"{cls}/{pid}" if pid is not None else f"{cls}/file:{path}")
    return np.asarray(out, dtype=str)


def duplicate_sets(paths: Sequence[str], digests: Sequence[str]) -> list[list[str]]:
    """Sets of byte-identical files (same sha256), each sorted, sets sorted by first path."""
    by_digest: dict[str, list[str]] = defaultdict(list)
    for path, digest in zip(paths, digests):
        if digest:
            by_digest[digest].append(path)
    return sorted((sorted(ps) for ps in by_digest.values() if len(ps) > 1), key=lambda s: s[0])


def merge_duplicate_groups(groups: np.ndarray, paths: Sequence[str],
                           dup_sets: list[list[str]]) -> np.ndarray:
    """Merges every group that shares a byte-identical file into one (union-find).

    Whole groups are merged, not just the duplicated files: moving one file would split its
    patient's other images away from it.

    Returns:
        A new group array; a merged group takes the smallest id of its members.
    """
    parent: dict[str, str] = {}

    def find(g: str) -> str:
        while parent.get(g, g) != g:
            g = parent[g]
        return g

    index = {p: i for i, p in enumerate(paths)}
    for dup in dup_sets:
        roots = sorted({find(str(groups[index[p]])) for p in dup})
        for r in roots[1:]:
            parent[r] = roots[0]
    if not parent:
        return groups.copy()
    return np.asarray([find(str(g)) for g in groups], dtype=str)
