"""The models package imports in one direction: no import cycle among its modules, and no function-local
import used to hide one.

The graph is read from the source with `ast`, not by importing: every `import` and `from ... import`
inside models/ that names another models/ module is an edge, relative imports resolved to dotted
names, a package's `__init__` counted as the module named after the package. An import inside a
function is an edge too (it is how a cycle is usually hidden), and is reported on its own as well.
Imports under `if TYPE_CHECKING:` never run and are left out. Function-local imports of third-party
packages (transformers, huggingface_hub, ...) are fine: they keep optional dependencies optional.
"""
from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "models"


@dataclass(frozen=True)
class Edge:
    source: str          # the importing module, dotted
    target: str          # the imported models/ module, dotted
    path: str            # the importing file, relative to the repository root
    line: int
    function: str | None  # the enclosing function for a function-local import, else None

    def where(self) -> str:
        return f"{self.path}:{self.line}" + (f" (inside {self.function}())" if self.function else "")


def module_files(package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under the package; a package is its __init__.py."""
    modules = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.Module):
    """(node, enclosing function name or None) for every import that can run; `if TYPE_CHECKING:` bodies skipped."""
    def visit(node: ast.AST, function: str | None):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, function
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for other in child.orelse:
                    yield from visit(ast.Module(body=[other], type_ignores=[]), function)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield from visit(child, child.name if function is None else f"{function}.{child.name}")
            elif isinstance(child, ast.Lambda):
                yield from visit(child, function or "<lambda>")
            else:
                yield from visit(child, function)
    yield from visit(tree, None)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute dotted name `from <...> import` refers to, as seen from `module`."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_edges(package: str = PACKAGE) -> list[Edge]:
    """Every import inside the package of one of its own modules."""
    modules = module_files(package)
    edges = []
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = str(path.relative_to(ROOT))
        for node, function in _imports(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                for alias in node.names:
                    # `import models.a.b` runs models.a.b: the deepest name that is one of our modules
                    parts = alias.name.split(".")
                    found = next((".".join(parts[:n]) for n in range(len(parts), 0, -1)
                                  if ".".join(parts[:n]) in modules), None)
                    if found:
                        targets.append(found)
            else:
                base = _resolve(module, is_package, node)
                for alias in node.names:
                    # `from pkg import name`: the submodule pkg.name if there is one, else pkg itself
                    sub = f"{base}.{alias.name}"
                    if sub in modules:
                        targets.append(sub)
                    elif base in modules:
                        targets.append(base)
            for target in dict.fromkeys(targets):
                if target != module:
                    edges.append(Edge(module, target, rel, node.lineno, function))
    return edges


def _strongly_connected(nodes: list[str], graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (Tarjan 1972), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            components.append(sorted(component))

    for v in nodes:
        if v not in index:
            connect(v)
    return components


def _shortest_cycle_through(start: str, members: set[str], graph: dict[str, set[str]]) -> list[str]:
    """The shortest path start -> ... -> start inside one component (breadth first)."""
    parent: dict[str, str] = {}
    queue = deque([start])
    seen = {start}
    while queue:
        v = queue.popleft()
        for w in sorted(graph.get(v, ())):
            if w not in members:
                continue
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return list(reversed(path)) + [start]
            if w not in seen:
                seen.add(w)
                parent[w] = v
                queue.append(w)
    return []


def import_cycles(edges: list[Edge]) -> list[tuple[list[str], list[list[str]]]]:
    """Each group of modules that import one another (a strongly connected component of two or more),
    with cycles that name all of them: the shortest cycle through each module that an earlier cycle
    of the group does not already pass through."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
    nodes = sorted(set(graph) | {e.target for e in edges})
    groups = []
    for component in _strongly_connected(nodes, graph):
        if len(component) < 2:
            continue
        covered: set[str] = set()
        cycles = []
        for module in component:
            if module not in covered:
                cycle = _shortest_cycle_through(module, set(component), graph)
                cycles.append(cycle)
                covered.update(cycle)
        groups.append((component, cycles))
    return sorted(groups)


def describe(cycle: list[str], edges: list[Edge]) -> str:
    """One cycle as `a -> b -> a`, then each step with the lines that import."""
    by_pair: dict[tuple[str, str], list[Edge]] = {}
    for edge in edges:
        by_pair.setdefault((edge.source, edge.target), []).append(edge)
    steps = [f"      {a} -> {b}   at " + ", ".join(e.where() for e in by_pair[(a, b)]) for a, b in zip(cycle, cycle[1:])]
    return "    " + " -> ".join(cycle) + "\n" + "\n".join(steps)


def test_the_graph_sees_relative_and_package_imports():
    edges = {(e.source, e.target) for e in import_edges()}
    assert ("models", "models.loading") in edges  # models/__init__.py: from .loading import ...
    assert any(source.startswith("models.families.") and target == "models.families.base"
               for source, target in edges)  # a family file: from .base import ...


def test_no_import_cycle_among_models_modules():
    edges = import_edges()
    groups = import_cycles(edges)
    if groups:
        pytest.fail(f"{len(groups)} group(s) of {PACKAGE}/ modules import one another (arrows point from importer to "
                    "imported):\n" + "\n".join(
                        f"  {', '.join(members)}:\n" + "\n".join(describe(cycle, edges) for cycle in cycles)
                        for members, cycles in groups), pytrace=False)


def test_no_function_local_import_of_a_models_module():
    local = [e for e in import_edges() if e.function is not None]
    if local:
        pytest.fail(f"{len(local)} function-local import(s) of {PACKAGE}/ modules (import at the top of the module, "
                    "or move the code so the import goes one way):\n"
                    + "\n".join(f"    {e.where()}: {e.source} imports {e.target}" for e in local), pytrace=False)
