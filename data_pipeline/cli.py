"""The command-line runner shared by ``run_search.py`` and ``python -m search``.

Parses the options of the given subcommand modules, dispatches to the chosen handler and turns a
user mistake (:class:`data_pipeline.errors.UserError`) into one message and its exit code,
without a traceback. It lives at the bottom of the packages (beside ``errors.py``) so that a
package's own ``__main__`` can use it without importing the top-level ``run_search`` script
(imports run one way: ``run_search.py`` -> packages, never back).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import importlib.abc
import importlib.machinery
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

# What TensorFlow's C++ libraries print while they load, before absl logging is initialised:
# absl writes those lines to stderr whatever TF_CPP_MIN_LOG_LEVEL says (TensorFlow 2.21), e.g.
# "I0000 00:00:... port.cc:153] oneDNN custom operations are on..." and "cudart_stub.cc:31]
# Could not find cuda drivers...". Error and fatal lines (E..., F...) are always let through.
_STARTUP_NOISE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\)"
                            r"|[IW]\d{4} [\d:.]+ +\d+ \S+:\d+\] )")


class _QuietLoader(importlib.abc.Loader):
    """Runs the real loader of ``tensorflow`` with file descriptor 2 captured, then replays
    what was captured minus :data:`_STARTUP_NOISE` (a Python-level redirect cannot see what
    C++ code writes)."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def __getattr__(self, name: str) -> Any:  # is_package, get_filename, ... of the real one
        return getattr(self._loader, name)

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no stderr to protect
            self._loader.exec_module(module)
            return
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                self._loader.exec_module(module)
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                kept = [line for line in captured.read().decode("utf-8", "replace")
                        .splitlines(keepends=True) if not _STARTUP_NOISE.match(line)]
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Wraps the first ``import tensorflow`` (whoever triggers it: Keras, a handler) in
    :class:`_QuietLoader`, so commands that never load TensorFlow do not pay for it."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "tensorflow":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow_startup() -> importlib.abc.MetaPathFinder | None:
    """Silences TensorFlow's C++ start-up logging for this process; returns the import hook
    installed (to remove after the command), or None when the user asked for the logs
    (``TF_CPP_MIN_LOG_LEVEL`` 0 or 1) or TensorFlow is already loaded.

    ``TF_CPP_MIN_LOG_LEVEL=3`` (unless set) hides the error-level ``failed call to cuInit``
    line of a machine without a GPU, logged once absl is initialised; the lines logged before
    that are filtered by the import hook. Real failures still raise Python exceptions.
    """
    if not os.environ.get("TF_CPP_MIN_LOG_LEVEL"):
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] in ("0", "1") or "tensorflow" in sys.modules:
        return None
    hook = _QuietTensorFlowImport()
    sys.meta_path.insert(0, hook)
    return hook


class _UserLineFormatter(logging.Formatter):
    """``warning: <message>``: what the packages log for the user, without a logger name."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


@contextlib.contextmanager
def user_messages(stream: Any = None) -> Iterator[None]:
    """Prints the packages' log records (warnings and above) to stderr for one command.

    ``data_pipeline`` reports what the user should know (images skipped, images left out of
    training) through ``logging``; a search also copies those lines into ``search.log``
    (``search.watch.progress.Progress.capture_logs``, which takes them over while it runs).
    """
    logger = logging.getLogger("data_pipeline")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_UserLineFormatter())
    handler.setLevel(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def build_parser(modules: Sequence[str], prog: str = "run_search.py") -> argparse.ArgumentParser:
    """Builds the argument parser with the subcommands of ``modules``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Hyperparameter search for chest X-ray classifiers (CNN and ANN) on KerasTuner, "
            "with patient-grouped k-fold cross-validation, resume, leaderboards and reports."
        ),
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in modules:
        importlib.import_module(name).register(subparsers)
    return parser


def run(modules: Sequence[str], argv: Sequence[str] | None = None,
        prog: str = "run_search.py") -> int:
    """Runs one subcommand of ``modules`` and returns the process exit code.

    Args:
        modules: The ``<pkg>.commands`` modules whose subcommands are offered.
        argv: The arguments (default: ``sys.argv[1:]``).
        prog: The program name shown in usage lines.
    """
    # Keep TensorFlow's C++ start-up chatter out of the user's terminal.
    hook = quiet_tensorflow_startup()
    from data_pipeline.errors import UserError

    parser = build_parser(modules, prog)
    args = parser.parse_args(argv)
    try:
        with user_messages():
            return int(args.func(args) or 0)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as err:
        # A full disk can surface from any write (logs, reports); the packages turn the ones
        # they expect into UserErrors, this catches the rest without a traceback.
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" while writing {err.filename}" if err.filename else ""
        print(f"error: no space left on the disk{where} ({err.strerror}). Finished work is "
              "saved. Fix: free space on that disk, then rerun the same command (a search "
              "resumes where it stopped).", file=sys.stderr)
        return 2
    finally:
        if hook is not None and hook in sys.meta_path:
            sys.meta_path.remove(hook)
