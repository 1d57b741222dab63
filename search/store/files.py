"""Files written so a kill never leaves half of one, read so a damaged one is reported.

Every file of the run folder is written here atomically (a temporary file, then
``os.replace``), and every JSON file is read through :func:`read_json`, the one reader: a
missing file is None, a damaged one goes to the caller's ``on_damage``. A full disk or quota is
told as a :class:`DiskFullError` that names the path and the fix.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from search.errors import SearchError

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def now_iso() -> str:
    """Current UTC time, ISO-8601, seconds."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class DiskFullError(SearchError):
    """No space left (or over quota) where the run folder is written; resumable once freed."""


def is_disk_full(exc: BaseException | None) -> bool:
    """True for ENOSPC / EDQUOT, or an error caused by one (following ``__cause__``/context)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, DiskFullError) or (isinstance(exc, OSError)
                                              and exc.errno in DISK_FULL_ERRNOS):
            return True
        if "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc):
            return True  # h5py and TensorFlow wrap the errno in their own error text
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def disk_full_error(path: Path | str, err: BaseException | None = None) -> DiskFullError:
    """The message for a write that found the disk full: the path, and how to go on."""
    path = Path(path)
    why = f" ({err.strerror})" if isinstance(err, OSError) and err.strerror else ""
    return DiskFullError(
        f"no space left on the disk holding {path.parent} while writing {path.name}{why}. "
        "The search stopped; every finished fold and trial is saved (fold<k>.json, cv.json) "
        "and the unfinished fold is trained again on resume. Fix: free space on that disk "
        f"(`df -h {path.parent}` shows it), then rerun the same command to resume.")


def write_text_atomic(path: Path, text: str) -> None:
    """Writes text through a temporary file and ``os.replace`` (all or nothing).

    Raises:
        DiskFullError: no space left; the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if err.errno in DISK_FULL_ERRNOS:
            raise disk_full_error(path, err) from None
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    """Writes JSON through a temporary file and ``os.replace`` (all or nothing).

    Raises:
        DiskFullError: no space left; nothing is half-written and no temporary file stays.
    """
    write_text_atomic(path, json.dumps(obj, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_json(path: Path, on_damage: Callable[[Path, Exception], Any] | None = None) -> Any | None:
    """Reads JSON, or None when the file is missing (the project's one JSON reader).

    Args:
        path: the file.
        on_damage: called with the path and the error when the path cannot be read (a parent is
            a file, no permission) or holds damaged JSON; its return value is returned. Readers
            in ``results/`` pass their own (skip with a note, or a ``ResultsError``).

    Raises:
        SearchError: without ``on_damage``, for an unreadable or damaged file; every file here
            is written atomically, so that means outside damage.
    """
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        if on_damage is not None:
            return on_damage(Path(path), err)
        raise SearchError(
            f"cannot read {path}: {err}. Files in a run folder are written atomically, so it "
            f"was changed from outside. Fix or delete that file, or start afresh with "
            f"--overwrite or a new --run-dir.") from None
