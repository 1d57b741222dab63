#!/usr/bin/env python3
"""Command-line entry point: hyperparameter search for chest X-ray classifiers.

A thin layer: ``build_parser()`` collects the subcommands that each package registers in its
``commands.py`` module, and ``main()`` dispatches to the chosen handler. Usage errors print one
message and exit non-zero without a traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Sequence

# Subcommands live next to the code they drive; the order is the order in --help.
COMMAND_MODULES = (
    "data_pipeline.commands",
    "spaces.commands",
    "search.commands",
    "results.commands",
    "results.model_commands",
)


def build_parser(modules: Sequence[str] = COMMAND_MODULES,
                 prog: str = "run_search.py") -> argparse.ArgumentParser:
    """Builds the argument parser with the subcommands of ``modules`` (default: all)."""
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


def main(argv: Sequence[str] | None = None, modules: Sequence[str] | None = None,
         prog: str | None = None) -> int:
    """Runs one subcommand and returns the process exit code."""
    # Keep TensorFlow's C++ start-up chatter out of the user's terminal.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from data_pipeline.errors import UserError

    parser = build_parser(COMMAND_MODULES if modules is None else modules,
                          prog or "run_search.py")
    args = parser.parse_args(argv)
    try:
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


if __name__ == "__main__":
    sys.exit(main())
