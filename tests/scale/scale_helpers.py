"""Helpers for the scale tests: free ports, subprocesses always cleaned up, polling."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A search space small enough for subprocess searches that must finish in seconds.
TINY_SPACE = """
[common]
batch_size = 16
augmentation = false
lr_schedule = "constant"
[ann]
dense_layers = {min = 1, max = 2}
dense_units = {min = 16, max = 32}
dense_batch_norm = "none"
"""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (and the one after it, for a second family)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair")


class Procs:
    """Starts subprocesses in their own sessions and kills whatever is left at teardown."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.items: list[tuple[subprocess.Popen, Path]] = []

    def start(self, args: list[str], name: str, env: dict[str, str] | None = None
              ) -> subprocess.Popen:
        log = self.tmp / f"{name}.{len(self.items)}.log"
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
                    **(env or {})}
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=full_env,
                                stdout=open(log, "w"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        proc.log_path = log  # type: ignore[attr-defined]
        self.items.append((proc, log))
        return proc

    @staticmethod
    def kill(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)

    def wait(self, proc: subprocess.Popen, timeout: float) -> int:
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.dump()
            raise

    def dump(self) -> None:
        for proc, log in self.items:
            print(f"===== {log.name} (rc={proc.poll()})\n{log.read_text()[-3000:]}")

    def cleanup(self) -> None:
        for proc, _ in self.items:
            self.kill(proc)


def wait_until(cond: Callable[[], bool], timeout: float, what: str, poll: float = 0.2) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
