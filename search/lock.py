"""One search per run folder: a ``.lock`` file holding pid, host, start time and role.

A lock whose pid is dead on this host is stale (a ``kill -9`` leaves one behind) and is taken
over. A lock held by a live process, or by another host (whose pids we cannot check), is
refused. The ``role`` field leaves room for KerasTuner's distributed mode: the chief holds
``.lock``; a worker would hold ``.lock.<tuner_id>`` with ``role="worker"`` so chief and workers
share one project folder without refusing each other.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
from pathlib import Path
from typing import Any

from search.errors import SearchError

LOCK_NAME = ".lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def lock_path(run_dir: Path, role: str = "chief", tuner_id: str | None = None) -> Path:
    """Returns the lock file for a role: ``.lock`` for the chief, ``.lock.<id>`` for workers."""
    if role == "chief":
        return Path(run_dir) / LOCK_NAME
    return Path(run_dir) / f"{LOCK_NAME}.{tuner_id or 'worker'}"


def read_lock(path: Path) -> dict[str, Any] | None:
    """Returns the lock record, or None when absent or unreadable (a torn write)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


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
        """Creates the lock file, taking over a stale one; raises SearchError if held."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        host = socket.gethostname()
        for _ in range(3):
            record = {
                "pid": os.getpid(),
                "host": host,
                "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "role": self.role,
            }
            try:
                # O_EXCL: two searches starting together cannot both win.
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                held = read_lock(self.path)
                if held is None or self._is_stale(held, host):
                    self.took_over = held or {}
                    self.path.unlink(missing_ok=True)
                    continue
                raise SearchError(
                    f"The run folder {self.path.parent} is in use by another search "
                    f"(pid {held.get('pid')} on host {held.get('host')}, started "
                    f"{held.get('started')}). Only one search may run on a run folder at a "
                    "time: wait for it to finish, stop it (Ctrl-C), or use another --run-dir. "
                    f"If that process is gone (for example another machine crashed), delete "
                    f"{self.path}."
                )
            with os.fdopen(fd, "w") as fh:
                json.dump(record, fh)
            self.record = record
            return self
        raise SearchError(f"Could not create the lock file {self.path}; remove it and retry.")

    @staticmethod
    def _is_stale(held: dict[str, Any], host: str) -> bool:
        if held.get("host") != host:
            return False  # cannot check another machine's pids
        pid = held.get("pid")
        return not isinstance(pid, int) or pid == os.getpid() or not _pid_alive(pid)

    def release(self) -> None:
        """Removes the lock file if this process still owns it."""
        held = read_lock(self.path)
        if held is not None and held.get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
