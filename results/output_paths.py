"""Output paths checked before the work: a results command refuses a path it could not write
*before* it spends minutes predicting or evaluating, instead of losing the results at the end.

One check for every ``--out`` (``leaderboard``, ``analyze``, ``compare``, ``predict``): a file
where a folder is expected, a folder where a file is expected, an ancestor that is a file, or a
folder the user may not write into. Nothing is created here: a refused command leaves no trace.
"""

from __future__ import annotations

import os
from pathlib import Path

from results.errors import ResultsError


def _nearest_existing(path: Path) -> Path:
    """``path`` itself or its closest ancestor that exists (the folder a mkdir -p starts in)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def _check_ancestors(path: Path, option: str, what: str) -> None:
    """Refuses a path whose missing folders could not be created (a file or a locked folder
    in the way); missing folders themselves are fine, they are created when writing."""
    base = _nearest_existing(path.parent)
    if not base.is_dir():
        why = ("is a file, not a folder" if base == path.parent
               else f"is a file, so the folder {path.parent} cannot be created under it")
        raise ResultsError(
            f"{option} {path}: {base} {why}. Pass {what} under an existing folder, or move "
            f"{base} out of the way.")
    if not os.access(base, os.W_OK | os.X_OK):
        created = "" if base == path.parent else f" (to create {path.parent} in)"
        raise ResultsError(
            f"{option} {path}: no permission to write in the folder {base}{created}. Pass "
            f"{what} in a folder you can write to, or fix the folder's permissions "
            f"(chmod u+w {base}).")


def check_output_file(path: str | os.PathLike, option: str = "--out") -> Path:
    """Checks that a file can be written at ``path``, before any work; returns it as a Path.

    Args:
        path: the file the command will write (created with its missing parent folders).
        option: the option that named it, quoted in the message.

    Raises:
        ResultsError: ``path`` is a folder, an unwritable file, or lies under a file or a
            folder the user may not write into.
    """
    path = Path(path)
    if path.is_dir():
        raise ResultsError(
            f"{option} {path} is a folder, but a file is expected here. Pass a file name, "
            f"e.g. {option} {path / 'out.csv'}.")
    if path.exists() and not os.access(path, os.W_OK):
        raise ResultsError(
            f"{option} {path}: the file exists and is read-only. Pass another file name, or "
            f"make it writable (chmod u+w {path}).")
    _check_ancestors(path, option, "a file name")
    return path


def check_output_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """Checks that a folder can be written at ``path``, before any work; returns it as a Path.

    Args:
        path: the folder the command will write into (created when missing).
        option: the option that named it, quoted in the message.

    Raises:
        ResultsError: ``path`` is a file, a read-only folder, or lies under a file or a folder
            the user may not write into.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ResultsError(
            f"{option} {path} is a file, but a folder is expected here (the command writes "
            f"several files into it). Pass a folder name, e.g. {option} "
            f"{path.with_suffix('')}_out, or move the file away.")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise ResultsError(
                f"{option} {path}: no permission to write in this folder. Pass a folder you "
                f"can write to, or fix its permissions (chmod u+w {path}).")
        return path
    _check_ancestors(path, option, "a folder")
    return path
