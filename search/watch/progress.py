"""Progress reporting: one line per finished trial, a per-epoch bar on a terminal, search.log.

Every line also goes to ``search.log`` in the run folder (``--quiet`` silences the terminal
only). The per-epoch bar is drawn with carriage returns, so it is shown only when stdout is a
TTY and not quiet; logs and CI output get the trial lines alone.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import keras

from search.fit.failures import short_reason


def format_duration(seconds: float) -> str:
    """``75`` -> ``"1m15s"``; ``3700`` -> ``"1h01m"``."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def hyperband_stage(hyperband: dict[str, Any] | None) -> str | None:
    """``round 2, 10 epochs, continues 0003`` for a Hyperband trial (its ``cv.json``
    ``hyperband`` record); None otherwise."""
    if not hyperband or "round" not in hyperband:
        return None
    text = f"round {int(hyperband['round']) + 1}, {hyperband.get('epochs')} epochs"
    if hyperband.get("trial_id"):
        text += f", continues {hyperband['trial_id']}"
    return text


class Progress:
    """Writes progress lines to the terminal (unless quiet) and to ``search.log``.

    Args:
        log_path: The run's ``search.log`` (appended to).
        quiet: Terminal silent; the log still gets every line.
        stream: Terminal stream (stdout by default).
    """

    def __init__(self, log_path: Path | None, quiet: bool = False, stream: TextIO | None = None):
        self.log_path = Path(log_path) if log_path else None
        self.quiet = quiet
        self.stream = stream or sys.stdout
        self.start = time.monotonic()
        self.session_trials = 0

    @property
    def show_bar(self) -> bool:
        """True when an in-place epoch bar makes sense."""
        return not self.quiet and hasattr(self.stream, "isatty") and self.stream.isatty()

    def line(self, text: str, *, terminal: bool = True) -> None:
        """Writes one line to the log and, unless quiet, to the terminal."""
        if terminal and not self.quiet:
            print(text, file=self.stream, flush=True)
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            stamp = _dt.datetime.now().isoformat(timespec="seconds")
            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write(f"{stamp} {text}\n")

    @contextlib.contextmanager
    def capture_logs(self, name: str = "data_pipeline") -> Iterator[None]:
        """Routes the ``name`` logger's warnings to :meth:`line` for the block.

        ``data_pipeline`` logs what the user should know (unreadable images skipped, train/
        images left out because their patient is in test/); inside a search those lines belong
        in ``search.log`` beside the progress lines. The logger's other handlers (the CLI's
        stderr one) are set aside meanwhile, so a line is shown once.
        """
        progress = self

        class _ToProgress(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                progress.line(f"{record.levelname.lower()}: {record.getMessage()}")

        logger = logging.getLogger(name)
        saved, propagate = logger.handlers[:], logger.propagate
        handler = _ToProgress(logging.WARNING)
        logger.handlers, logger.propagate = [handler], False
        try:
            yield
        finally:
            logger.handlers, logger.propagate = saved, propagate

    def trial_line(self, *, family: str, trial_id: str, done: int, total: int | None,
                   status: str, objective: str, fold_scores: list[float], mean: float | None,
                   std: float | None, best: float | None, best_id: str | None,
                   diagnosis: str | None, reason: str | None = None,
                   budget_left_s: float | None = None, stage: str | None = None) -> str:
        """Formats and writes the line for one finished trial; returns it.

        ``stage`` names the Hyperband round (``round 2, 10 epochs, continues 0003``).

        The ETA assumes the remaining trials take as long as this session's trials did, and is
        capped by what is left of the time budget (the search stops there).
        """
        self.session_trials += 1
        elapsed = time.monotonic() - self.start
        left = max(0, (total or done) - done)
        eta = elapsed / self.session_trials * left
        if budget_left_s is not None:
            eta = min(eta, max(0.0, budget_left_s))
        of = f"{done}/{total}" if total else f"{done}"
        if status == "COMPLETED":
            folds = " ".join(f"{s:.3f}" for s in fold_scores)
            body = (f"{objective} {mean:.4f} +- {std:.4f} [folds {folds}] {diagnosis}")
        elif status == "SUSPENDED":
            # Waits at a ladder rung for peers; the oracle resumes it from there.
            body = f"SUSPENDED ({reason})"
        elif status == "PRUNED":
            folds = " ".join(f"{s:.3f}" for s in fold_scores)
            # Stopped inside its first fold (a ladder rung, search.schedule.cost): no fold finished.
            body = f"PRUNED [folds {folds}] ({reason})" if folds else f"PRUNED ({reason})"
        else:
            # The numbers and the fix, not a prefix cut; the full reason is in cv.json.
            body = f"FAILED ({short_reason(reason)})"
        best_txt = f"best {best:.4f} (trial {best_id})" if best is not None else "best -"
        where = f"id {trial_id}" + (f", {stage}" if stage else "")
        text = (f"[{family}] trial {of} ({where}): {body} | {best_txt} | "
                f"elapsed {format_duration(elapsed)} ETA {format_duration(eta)}")
        self.line(text)
        return text


class EpochBar(keras.callbacks.Callback):
    """An in-place one-line bar per fold: epoch, loss and the objective (TTY only)."""

    def __init__(self, stream: TextIO, label: str, epochs: int, objective: str, width: int = 20):
        super().__init__()
        self.stream, self.label, self.epochs = stream, label, epochs
        self.objective, self.width = objective, width

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        done = epoch + 1
        filled = int(self.width * done / max(1, self.epochs))
        bar = "#" * filled + "." * (self.width - filled)
        obj = logs.get(self.objective)
        obj_txt = f" {self.objective} {obj:.4f}" if obj is not None else ""
        self.stream.write(f"\r  {self.label} epoch {done}/{self.epochs} [{bar}] "
                          f"loss {logs.get('loss', float('nan')):.4f}{obj_txt}   ")
        self.stream.flush()

    def on_train_end(self, logs=None):
        self.stream.write("\r" + " " * 100 + "\r")
        self.stream.flush()
