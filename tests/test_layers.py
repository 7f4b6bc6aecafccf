"""The package's layers, read from every module's imports.

Each module belongs to one layer; a module may import its own layer and the layers
below it, never one above, and the module graph has no cycle. Every import counts:
top-level ones, those under ``TYPE_CHECKING`` and those inside functions. ARCHITECTURE.md
draws the same picture.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# lowest first; a module's layer is the longest prefix that names it
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("ponder._version", "ponder.core")),
    ("grading", ("ponder.grading",)),
    ("engines", ("ponder.engines",)),
    ("tasks", ("ponder.tasks",)),
    ("verifiers", ("ponder.verifiers",)),
    ("strategies", ("ponder.strategies",)),
    ("api", ("ponder.api",)),
    ("runs", ("ponder.runs",)),
    ("analysis", ("ponder.analysis",)),
    ("ttt", ("ponder.ttt",)),
    ("serve", ("ponder.serve",)),
    ("cli", ("ponder.cli",)),
    ("package", ("ponder",)),
)

# (importer, imported) pairs allowed against the rules, each with its reason
ALLOWED: Mapping[tuple[str, str], str] = {}


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, modules: set[str], src: Path = SRC) -> set[str]:
    """The ponder modules ``path`` imports anywhere in its body. ``from P import x``
    counts as importing ``P.x`` when that is a module, else ``P``."""
    name = module_name(path, src)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "ponder")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            if source.split(".")[0] != "ponder":
                continue
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                found.add(sub if sub in modules else source)
    found.discard(name)
    return found


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    paths = sorted((src / "ponder").rglob("*.py"))
    modules = {module_name(p, src) for p in paths}
    return {module_name(p, src): imports_of(p, modules, src) for p in paths}


def layer_of(module: str) -> int:
    best, rank = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    if rank < 0:
        raise AssertionError(f"module {module} is in no layer; add it to LAYERS")
    return rank


def upward(graph: Mapping[str, Iterable[str]]) -> list[str]:
    """Imports that go up the layers, or that import the package root."""
    found = []
    for importer, targets in sorted(graph.items()):
        for target in sorted(targets):
            if (importer, target) in ALLOWED:
                continue
            if target == "ponder" and importer != "ponder":
                found.append(f"{importer} imports the package root (use ponder._version)")
            elif layer_of(target) > layer_of(importer):
                found.append(
                    f"{importer} ({LAYERS[layer_of(importer)][0]}) imports {target} "
                    f"({LAYERS[layer_of(target)][0]}), a layer above it"
                )
    return found


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), as a cycle."""
    edges = {
        m: sorted(t for t in ts if t in graph and (m, t) not in ALLOWED) for m, ts in graph.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return groups


def test_every_module_is_in_a_layer() -> None:
    for module in import_graph():
        layer_of(module)


def test_no_import_goes_up_the_layers() -> None:
    found = upward(import_graph())
    assert not found, "imports against the layers:\n" + "\n".join(found)


def test_the_modules_import_no_cycle() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_every_allowed_exception_says_why_and_is_still_needed() -> None:
    graph = import_graph()
    for (importer, target), why in ALLOWED.items():
        assert why.strip(), f"{importer} -> {target} needs a reason"
        assert target in graph.get(importer, ()), f"{importer} no longer imports {target}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from ponder.strategies.base import Strategy\n", "imports ponder.strategies.base"),
        ("def f():\n    from ponder.runs.store import RunStore\n", "imports ponder.runs.store"),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from ponder.analysis import curves\n",
            "imports ponder.analysis.curves",
        ),
        ("import ponder\n", "imports the package root"),
    ],
)
def test_an_upward_import_is_caught(tmp_path: Path, source: str, expected: str) -> None:
    """The checker itself: a core module importing upwards (at the top, inside a
    function, under TYPE_CHECKING) or the root is reported."""
    for rel in ("ponder/__init__.py", "ponder/strategies/__init__.py", "ponder/strategies/base.py",
                "ponder/runs/__init__.py", "ponder/runs/store.py", "ponder/analysis/__init__.py",
                "ponder/analysis/curves.py", "ponder/core/__init__.py"):  # fmt: skip
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    (tmp_path / "ponder/core/bad.py").write_text(source)
    found = upward(import_graph(tmp_path))
    assert any(line.startswith("ponder.core.bad") and expected in line for line in found), found


def test_a_cycle_is_caught() -> None:
    graph = {"ponder.core.a": {"ponder.core.b"}, "ponder.core.b": {"ponder.core.a"}}
    assert cycles(graph) == [["ponder.core.a", "ponder.core.b"]]
