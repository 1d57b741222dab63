"""The README's CLI reference matches the real parser (so it cannot go stale)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_cli_reference_is_current():
    spec = importlib.util.spec_from_file_location("cli_reference",
                                                  ROOT / "scripts" / "cli_reference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    readme = (ROOT / "README.md").read_text()
    assert f"{mod.BEGIN}\n{mod.reference()}\n{mod.END}" in readme, (
        "README's CLI reference is stale: run `python scripts/cli_reference.py --write`")


def test_readme_quickstart_commands_exist():
    readme = (ROOT / "README.md").read_text()
    for script in ("./run.sh", "./test.sh"):
        assert script in readme and (ROOT / script).is_file()
    assert "bash test.sh" in (ROOT / ".ci" / "run").read_text()  # CI runs the README's command
