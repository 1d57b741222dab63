"""What a data folder holds, by content: sha256 of each image file's bytes.

The cheap fingerprint (:func:`data_pipeline.data_fingerprint`) covers names, sizes and
modification times, so a byte-identical copy (``cp -r``, a restore from backup, another disk)
looks changed. A run records the content of its data (``data_files.json``, see ARCHITECTURE.md);
comparing contents tells a moved copy (same bytes: carry on) from changed data, and names the
files that differ.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from data_pipeline.discovery import discover

_BLOCK = 1 << 20


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (the digest the decoder records for each image)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def content_digests(root: str | os.PathLike) -> dict[str, str]:
    """``{relative path: sha256}`` of every image file of a data folder (no decoding).

    Raises:
        DataError: the folder is not a usable data folder (see :func:`discover`).
    """
    found = discover(root)
    out = {}
    for f in found.files:
        try:
            out[f.path] = file_digest(Path(found.root) / f.path)
        except OSError:
            out[f.path] = ""  # unreadable: the decoder skips it too
    return out


def content_fingerprint(files: dict[str, str]) -> str:
    """sha256 over the sorted ``path<TAB>digest`` lines: equal exactly when the contents are."""
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(f"{path}\t{files[path]}\n".encode())
    return h.hexdigest()


def content_differences(saved: dict[str, str], current: dict[str, str],
                        limit: int = 5) -> list[str]:
    """The first differing files, as ``path (changed|missing|new)``, then a count of the rest.

    Files the saved record marks unreadable (empty digest) are compared like any other.
    """
    diffs = []
    for path in sorted(set(saved) | set(current)):
        if path not in current:
            diffs.append(f"{path} (missing)")
        elif path not in saved:
            diffs.append(f"{path} (new)")
        elif saved[path] != current[path]:
            diffs.append(f"{path} (changed)")
    if len(diffs) > limit:
        diffs = diffs[:limit] + [f"and {len(diffs) - limit} more"]
    return diffs
