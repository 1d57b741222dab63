"""One search per run folder: a ``.lock`` file holding pid, host, start time and role.

The file is held with an OS lock (``flock``) for the life of the search, so a lock left by a
dead process (``kill -9``) is free again and is taken over. A lock held by a live process, or by
another host (whose pids we cannot check), is
refused. The ``role`` field leaves room for KerasTuner's distributed mode: the chief holds
``.lock``; a worker would hold ``.lock.<tuner_id>`` with ``role="worker"`` so chief and workers
share one project folder without refusing each other.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Any

from search.errors import SearchError
from search.store.files import read_json

LOCK_NAME = ".lock"


def lock_path(run_dir: Path, role: str = "chief", tuner_id: str | None = None) -> Path:
    """Returns the lock file for a role: ``.lock`` for the chief, ``.lock.<id>`` for workers."""
    if role == "chief":
        return Path(run_dir) / LOCK_NAME
    return Path(run_dir) / f"{LOCK_NAME}.{tuner_id or 'worker'}"


def read_lock(path: Path) -> dict[str, Any] | None:
    """Returns the lock record, or None when absent or unreadable (a torn write)."""
    return read_json(path, lambda _path, _err: None)


def is_held(path: Path) -> bool:
    """True when a live process holds the lock file ``path`` (a dead holder's lock is free).

    Probes the OS lock without taking it for long, so readers such as the leaderboard can tell a
    running search from one that was killed.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the shared probe lock if we got it
    return False


class RunLock:
    """An acquired lock; use as a context manager or call :meth:`release`.

    Args:
        run_dir: The run folder.
        role: ``"chief"`` (a normal search) or ``"worker"`` (future distributed mode).
        tuner_id: The worker's id when ``role="worker"``.
    """

    def __init__(self, run_dir: Path, role: str = "chief", tuner_id: str | None = None):
        self.path = lock_path(run_dir, role, tuner_id)
        self.role = role
        self.record: dict[str, Any] = {}
        self.took_over: dict[str, Any] | None = None

    def acquire(self) -> RunLock:
        """Takes the lock, taking over a stale one; raises SearchError if held.

        Exclusivity comes from an OS file lock (``flock``) held for the life of the process: the
        kernel drops it when the process dies, even by ``kill -9``, so two searches on one host
        can never both hold it and a dead one never blocks. The JSON record inside only says who
        holds it. A record from another host is still refused, since its pid cannot be checked
        and network filesystems do not always honour ``flock``.
        """
        host = socket.gethostname()
        for _ in range(5):
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise self._in_use(read_lock(self.path) or {}) from None
            try:
                same_file = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same_file = False
            if not same_file:  # released and unlinked between our open and flock: retry
                os.close(fd)
                continue
            held = read_lock(self.path)
            if held and held.get("host") not in (None, host) and held.get("pid") != os.getpid():
                os.close(fd)
                raise self._in_use(held)
            if held:
                self.took_over = held
            record = {
                "pid": os.getpid(),
                "host": host,
                "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "role": self.role,
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
            os.fsync(fd)
            self._fd = fd
            self.record = record
            return self
        raise SearchError(f"Could not take the lock file {self.path}; remove it and retry.")

    def _open(self) -> int:
        """Creates (or opens) the lock file; a folder this user may not write is a SearchError.

        The lock is the search's first write into the run folder, so a read-only or foreign
        folder is refused here, before any data is loaded or trained.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as err:
            if err.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            raise SearchError(
                f"cannot create the lock file {self.path}: {err.strerror} (the run folder "
                f"{self.path.parent} must be writable by this user: a search writes its "
                "records, logs and weights there). Fix: make it writable (for example "
                f"`chmod -R u+w {self.path.parent}`), run as its owner, or choose another "
                "--run-dir."
            ) from None

    def _in_use(self, held: dict[str, Any]) -> SearchError:
        return SearchError(
            f"The run folder {self.path.parent} is in use by another search "
            f"(pid {held.get('pid')} on host {held.get('host')}, started "
            f"{held.get('started')}). Only one search may run on a run folder at a "
            "time: wait for it to finish, stop it (Ctrl-C), or use another --run-dir. "
            f"If that process is gone (for example another machine crashed), delete "
            f"{self.path}."
        )

    def release(self) -> None:
        """Removes the lock file and drops the OS lock if this process holds it."""
        fd = getattr(self, "_fd", None)
        if fd is None:
            return
        held = read_lock(self.path)
        if held is not None and held.get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)
        os.close(fd)  # closing drops the flock
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
