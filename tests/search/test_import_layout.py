"""Imports run one way inside ``search/distributed/`` and from the packages to ``run_search.py``.

Read with ``ast`` (module-level and function-level imports alike, so a lazy import inside a
function that closes a circle is caught too); nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTED = ROOT / "search" / "distributed"


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in the file (absolute names)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def imported_names(path: Path, module: str) -> set[str]:
    """The names ``path`` takes with ``from <module> import ...``."""
    return {alias.name for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.ImportFrom) and node.module == module
            for alias in node.names}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle in ``graph`` as a list of nodes, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def distributed_graph() -> dict[str, set[str]]:
    modules = {p.stem for p in DISTRIBUTED.glob("_*.py") if p.stem != "__init__"}
    return {m: {n for n in modules if n != m
                and f"search.distributed.{n}" in imported_modules(DISTRIBUTED / f"{m}.py")}
            for m in modules}


def test_find_cycle_detects_a_circle() -> None:  # the checker itself can fail
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_distributed_imports_form_no_circle() -> None:
    graph = distributed_graph()
    assert {"_roles", "_client", "_chief", "_server", "_install", "_membership"} <= set(graph)
    assert find_cycle(graph) is None, f"import circle in search/distributed/: {find_cycle(graph)}"
    assert graph["_roles"] == set(), "_roles is the bottom of the package"


def test_no_private_name_crosses_a_distributed_module() -> None:
    crossing = {}
    for path in DISTRIBUTED.glob("*.py"):
        for other in DISTRIBUTED.glob("_*.py"):
            if other.stem == "__init__":
                continue
            private = {n for n in imported_names(path, f"search.distributed.{other.stem}")
                       if n.startswith("_")}
            if private:
                crossing[f"{path.name} <- {other.name}"] = sorted(private)
    assert not crossing, crossing


def test_no_package_imports_the_run_search_script() -> None:
    offenders = [str(p.relative_to(ROOT))
                 for pkg in ("search", "spaces", "data_pipeline", "results")
                 for p in (ROOT / pkg).rglob("*.py")
                 if {"run_search"} & {m.split(".")[0] for m in imported_modules(p)}]
    assert offenders == [], f"these import the top-level run_search.py: {offenders}"
