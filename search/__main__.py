"""``python -m search search [options]``: the search subcommand alone.

Same options and exit codes as ``run_search.py search``; useful when only this package is needed
(the resume tests run it in subprocesses).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Parses ``search`` options and runs it through the CLI's own error handling."""
    import run_search

    return run_search.main(argv, modules=("search.commands",), prog="python -m search")


if __name__ == "__main__":
    sys.exit(main())
