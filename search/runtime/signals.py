"""Ctrl-C and SIGTERM: stop cleanly, never in the middle of writing a file.

Raising from a signal handler is unreliable (the exception can land in a garbage-collector or
``__del__`` callback, where Python ignores it), so the handler only records the request:

- :class:`StopOnSignal` (a Keras callback) ends the running ``fit`` after the current batch;
  the unfinished fold is discarded (its earlier folds are on disk) and the search raises
  :class:`SearchInterrupted`;
- :func:`check` raises it at safe points: before each fold, after each save, between trials;
- a second Ctrl-C/SIGTERM raises at once (the user insists).

The engine then marks run.json ``interrupted``, prints the command that resumes, and exits 130
(SIGINT) or 143 (SIGTERM).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

import keras

_state: dict = {"pending": None}


class SearchInterrupted(BaseException):
    """The user or the system asked the search to stop (Ctrl-C or SIGTERM).

    A ``BaseException`` so neither KerasTuner nor Keras treats it as a failed trial.
    """

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal number: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


def _handler(signum, frame):  # noqa: ARG001 - signal handler signature
    if _state["pending"] is not None:
        raise SearchInterrupted(signum)
    _state["pending"] = signum


def requested() -> bool:
    """True once a stop was requested."""
    return _state["pending"] is not None


def check() -> None:
    """Raises SearchInterrupted at a safe point if a stop was requested."""
    if _state["pending"] is not None:
        raise SearchInterrupted(_state["pending"])


@contextlib.contextmanager
def critical() -> Iterator[None]:
    """A save that must complete; a stop requested meanwhile is honoured right after it."""
    yield
    check()


class StopOnSignal(keras.callbacks.Callback):
    """Ends ``fit`` after the current batch once a stop was requested."""

    def on_train_batch_end(self, batch, logs=None):
        if requested():
            self.model.stop_training = True


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """Installs the handlers for the duration of a search (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    _state["pending"] = None
    for s in previous:
        signal.signal(s, _handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _state["pending"] = None
