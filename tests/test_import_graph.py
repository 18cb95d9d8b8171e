"""The import graph of our packages: no cycle between modules, no import upward.

Read with :mod:`ast` (nothing is imported), so the test is fast and sees imports made
inside functions too: a lazy import hides a cycle from Python, not from the design.
Layers, lowest first (see the design notes): ``evidence_verify`` (the offline verifier, its
own distribution in ``verifier/``) < ``signing`` < ``archive`` < ``ingest`` < ``workers`` <
``api``; each imports only its own layer and those below it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
LAYERS = ("evidence_verify", "signing", "archive", "ingest", "workers", "api")
"""Our top-level packages, lowest layer first."""
HOMES = {"evidence_verify": ROOT / "verifier"}
"""Where a package lives when not at the project root."""

KNOWN_BACK_EDGES: set[tuple[str, str]] = set()
# Imports that close a cycle, found when this test was written; each was removed by work
# on issue 11. Should one have to be listed again, whoever removes it deletes its line (the
# test fails while a listed import is gone, so the list cannot outlive the cycles).


def _modules() -> dict[str, Path]:
    found = {}
    for package in LAYERS:
        home = HOMES.get(package, ROOT)
        for path in sorted((home / package).rglob("*.py")):
            parts = list(path.relative_to(home).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imported(module: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """Our modules that ``module`` imports anywhere in its text (``from p import m`` names p.m).

    Imports under ``if TYPE_CHECKING:`` are left out: they never run, so they close no cycle.
    """
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body for inner in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # ``import a.b.c`` of a name inside a module
                target = target.rpartition(".")[0]
            if target and target != module:
                yield target


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {module: set(_imported(module, path, known)) for module, path in known.items()}


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_graph_sees_lazy_and_relative_imports() -> None:
    graph = _graph()
    assert "archive.exports.plan" in graph["archive.exports.certificate"]
    assert {"archive.storage.local", "archive.storage.s3"} <= graph["archive.storage"]  # inside a function
    assert {"signing.certs", "signing.errors"} <= graph["signing.tsa"]  # from .certs import ...


def test_no_import_cycle() -> None:
    graph = _graph()
    gone = sorted(edge for edge in KNOWN_BACK_EDGES if edge[1] not in graph.get(edge[0], ()))
    assert not gone, f"these imports are gone: take them out of KNOWN_BACK_EDGES: {gone}"
    for module, target in KNOWN_BACK_EDGES:
        graph[module].discard(target)
    cycles = [sorted(c) for c in _cycles(graph)]
    assert not cycles, f"modules that import each other (directly or around a loop): {cycles}"


def test_no_import_upward() -> None:
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = sorted(
        f"{module} imports {target}"
        for module, targets in _graph().items() for target in targets
        if rank[target.split(".")[0]] > rank[module.split(".")[0]]
    )
    assert not upward, "imports against the layer order " + " < ".join(LAYERS) + ":\n" + "\n".join(upward)
