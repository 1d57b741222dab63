#!/usr/bin/env python3
"""Command-line entry point: hyperparameter search for chest X-ray classifiers.

A thin layer: ``build_parser()`` collects the subcommands that each package registers in its
``commands.py`` module, and ``main()`` dispatches to the chosen handler. Usage errors print one
message and exit non-zero without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from data_pipeline import cli
from data_pipeline.cli import quiet_tensorflow_startup  # noqa: F401 (re-exported)

# Subcommands live next to the code they drive; the order is the order in --help.
COMMAND_MODULES = (
    "data_pipeline.commands",
    "spaces.commands",
    "search.commands",
    "results.commands",
    "results.model_commands",
    "results.site_commands",
)


def build_parser(modules: Sequence[str] = COMMAND_MODULES,
                 prog: str = "run_search.py") -> argparse.ArgumentParser:
    """Builds the argument parser with the subcommands of ``modules`` (default: all)."""
    return cli.build_parser(modules, prog)


def main(argv: Sequence[str] | None = None, modules: Sequence[str] | None = None,
         prog: str | None = None) -> int:
    """Runs one subcommand and returns the process exit code (see :func:`data_pipeline.cli.run`)."""
    return cli.run(COMMAND_MODULES if modules is None else modules, argv, prog or "run_search.py")


if __name__ == "__main__":
    sys.exit(main())
