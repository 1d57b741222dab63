"""``python -m search search [options]``: the search subcommand alone.

Same options and exit codes as ``run_search.py search``; useful when only this package is needed
(the resume tests run it in subprocesses).
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    """Parses ``search`` options and runs it; user errors exit 2 without a traceback."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from data_pipeline.errors import UserError
    from search import commands

    parser = argparse.ArgumentParser(prog="python -m search")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    commands.register(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
