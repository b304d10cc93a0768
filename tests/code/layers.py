"""The import graph of the project's packages: who imports whom (read from the source, nothing is imported)."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

#: The stages of ``chicago_arrest``, lowest first: a package imports only packages at its rank or below.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("core",),
    ("data",),
    ("model",),
    ("monitoring",),
    ("reports",),
    ("registry",),
    ("release",),
    ("steps",),
    ("components",),
    ("pipelines",),
    ("cli",),
)
RANK = {package: rank for rank, packages in enumerate(LAYERS) for package in packages}
#: The model server may use the library up to the registry (never the release layer or anything above it).
SERVER_MAX_RANK = RANK["registry"]


def module_name(path: Path, root: Path) -> str:
    """``chicago_arrest.core.schema`` for ``<root>/chicago_arrest/core/schema.py``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports(path: Path, module: str, *, type_checking: bool = True) -> Iterator[str]:
    """Every module ``path`` imports (at any depth, in functions too), resolved to absolute names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = set() if type_checking else _type_checking_lines(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def graph(roots: Iterable[tuple[Path, Path]], prefixes: tuple[str, ...], **kw: bool) -> dict[str, set[str]]:
    """Module → the project modules it imports, for every ``.py`` file under each ``(root, package folder)``."""
    files = {module_name(p, root): p for root, folder in roots for p in folder.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for module, path in files.items():
        targets = {t for t in imports(path, module, **kw) if t.startswith(prefixes)}
        edges[module] = {t for t in targets if t in files and t != module}
    return edges


def stage(module: str) -> str | None:
    """The stage of a ``chicago_arrest`` module (``core`` for ``chicago_arrest.core.schema``)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "chicago_arrest" and len(parts) > 1 else None


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    """``a -> b`` for each import of a higher stage (or, from the server, of anything above the registry)."""
    bad = []
    for source, targets in sorted(edges.items()):
        for target in sorted(targets):
            to = stage(target)
            if to is None:
                continue
            if source.startswith("arrest_server"):
                limit = SERVER_MAX_RANK
            else:
                here = stage(source)
                if here is None:  # chicago_arrest/__init__.py imports nothing of the project
                    limit = -1
                elif here not in RANK:
                    bad.append(f"{source}: package {here!r} is not in a stage")
                    continue
                else:
                    limit = RANK[here]
            if to not in RANK or RANK[to] > limit:
                bad.append(f"{source} -> {target}")
    return bad


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``edges`` (Tarjan's strongly connected components of more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found
