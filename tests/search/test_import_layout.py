"""Imports run one way: between the rooms of ``search/``, inside ``search/distributed/``, and
from the packages to ``run_search.py``; no module of the project imports in a circle.

The rooms of ``search/`` (ARCHITECTURE.md, "search/: rooms and the direction of imports") are
ranked; a module may import its own room and lower ones, never a higher one or a peer. Read
with ``ast`` (module-level and function-level imports alike, so a lazy import inside a function
that closes a circle is caught too); nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTED = ROOT / "search" / "distributed"
PACKAGES = ("search", "results", "spaces", "data_pipeline")

# The rooms of search/, lowest first. Rooms of equal rank are peers: neither imports the other.
RANKS = {
    "search.errors": 0,
    "search.runtime": 1,
    "search.store": 2,
    "search.schedule": 3,
    "search.fit": 4,
    "search.watch": 5,
    "search.distributed": 5,
    "search.tuners": 6,
    "search": 7,  # the top: engine, config, preflight, commands, the package itself
}


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


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Project module -> the project modules it imports (``from pkg import module`` counts as
    the module, ``from module import name`` as the module)."""
    paths = {module_name(root, p): p for pkg in PACKAGES if (root / pkg).is_dir()
             for p in (root / pkg).rglob("*.py")}

    def resolve(name: str) -> str | None:
        while name and name not in paths:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in paths.items():
        found = imported_modules(path)
        deps = {resolve(m) for m in found if m.split(".")[0] in PACKAGES}
        graph[name] = {d for d in deps if d and d != name
                       # `from search import fit` names the package as well as the module
                       and not any(o.startswith(d + ".") and resolve(o) == o for o in found)}
    return graph


def room(module: str) -> str:
    """The ranked room a search module lives in."""
    return max((r for r in RANKS if module == r or module.startswith(r + ".")), key=len)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import inside ``search`` of a higher room or a peer room."""
    return sorted(f"{src} imports {dst} ({room(dst)} is not below {room(src)})"
                  for src, deps in graph.items() if src.split(".")[0] == "search"
                  for dst in deps if dst.split(".")[0] == "search"
                  and room(src) != room(dst) and RANKS[room(dst)] >= RANKS[room(src)])


def test_every_search_module_has_a_room() -> None:
    top = sorted(m for m in project_graph() if m.startswith("search.") and room(m) == "search")
    # The top holds only the engine and what the user calls; everything else is in a room.
    assert top == ["search.__main__", "search.commands", "search.config", "search.engine",
                   "search.preflight"], top


def test_search_imports_run_one_way() -> None:
    assert upward_imports(project_graph()) == []


def test_no_circle_in_the_project() -> None:
    graph = project_graph()
    assert len(graph) > 100  # every package was read
    assert find_cycle(graph) is None, f"import circle: {find_cycle(graph)}"


@pytest.mark.parametrize("planted, fault", [
    ({"search/store/kt.py": "from search.tuners import oracles\n",
      "search/tuners/oracles.py": ""}, "upward"),  # the store imports a tuner
    ({"search/fit/probes.py": "def f():\n    from search.watch.progress import Progress\n",
      "search/watch/progress.py": ""}, "upward"),  # a lazy import counts too
    ({"search/watch/progress.py": "from search.distributed import _roles\n",
      "search/distributed/_roles.py": ""}, "upward"),  # peers do not import each other
    ({"search/engine.py": "import search.config\n",
      "search/config.py": "from search.engine import run\n"}, "circle"),
    ({"results/a.py": "from spaces import b\n", "spaces/b.py": "import results.a\n"},
     "circle"),  # across packages
])
def test_the_checks_fail_on_a_planted_fault(tmp_path: Path, planted, fault) -> None:
    for rel, text in {"search/__init__.py": "", "search/errors.py": "", **planted}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    graph = project_graph(tmp_path)
    if fault == "upward":
        assert upward_imports(graph) and find_cycle(graph) is None, graph
    else:
        assert find_cycle(graph) and upward_imports(graph) == [], graph
