"""``python -m search search [options]``: the search subcommand alone.

Same options and exit codes as ``run_search.py search``; useful when only this package is needed
(the resume tests run it in subprocesses).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Parses ``search`` options and runs it through the CLI's own error handling.

    The shared runner (``data_pipeline.cli``) sits below the packages, so this module never
    imports the top-level ``run_search`` script (which imports the packages).
    """
    from data_pipeline import cli

    return cli.run(("search.commands",), argv, prog="python -m search")


if __name__ == "__main__":
    sys.exit(main())
