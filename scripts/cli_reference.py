#!/usr/bin/env python3
"""Prints the README's CLI reference (the usage line of every subcommand) as Markdown.

The README embeds this output between markers; ``tests/test_readme.py`` fails when they differ,
so the reference cannot go stale. Refresh it with ``python scripts/cli_reference.py --write``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BEGIN, END = "<!-- cli-reference:begin -->", "<!-- cli-reference:end -->"


def reference() -> str:
    """The Markdown block: one fenced usage per subcommand, with its one-line help."""
    import run_search

    parser = run_search.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in sub._choices_actions}
    blocks = []
    for name, p in sub.choices.items():
        p.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=100)
        usage = re.sub(r"\s+", " ", p.format_usage().replace("usage: ", "")).strip()
        blocks.append(f"- `{name}`: {helps.get(name, '')}\n\n  ```\n  {usage}\n  ```")
    return "\n".join(blocks)


def main() -> int:
    block = f"{BEGIN}\n{reference()}\n{END}"
    if "--write" in sys.argv:
        readme = ROOT / "README.md"
        text = readme.read_text()
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text,
                      flags=re.S)
        readme.write_text(text)
    else:
        print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
