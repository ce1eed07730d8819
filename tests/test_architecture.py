"""The map holds: each layer imports only the layers below it, no import cycle, short functions.

The layers, bottom up, are the folders of `src/dlcompat/` (`../shared/DESIGN.md`, "Layers"); the modules at the
package root (`errors`, `versions`, `registry`) sit under every layer, `cli` above all. Imports are read from the
source with `ast` (top-level and inside functions alike: a lazy import is still a dependency), so nothing is
imported. There is no cycle at all: registries (`dlcompat.registry.Registry`) name the modules that register
into them as strings, so self-registration needs none.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "dlcompat"

#: bottom up; a module may import its own layer and those before it in this list
LAYERS = ("errors", "registry", "versions", "envs", "data", "zoo", "frameworks", "converters", "runtimes", "metrics",
          "attacks", "findings", "store", "study", "report", "compare", "cli")
#: the longest function the codebase allows (issue 17)
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(module: str, path: Path) -> Iterator[str]:
    """The dlcompat modules `module` imports, at module level or inside a function."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        yield from (target for target in targets if target in MODULES and target != module)


EDGES = {module: set(_imports(module, path)) for module, path in MODULES.items()}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "errors"


def test_every_folder_has_a_place_in_the_layers():
    assert {_layer(m) for m in MODULES} <= set(LAYERS), "a new folder: give it its layer in LAYERS (and DESIGN.md)"


def test_no_module_imports_a_layer_above_its_own():
    upward = sorted(f"{module} -> {target}" for module, targets in EDGES.items() for target in targets
                    if LAYERS.index(_layer(target)) > LAYERS.index(_layer(module)))
    assert not upward, "upward imports:\n" + "\n".join(upward)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle():
    assert not _cycles(EDGES), "import cycles:\n" + "\n".join(" <-> ".join(cycle) for cycle in _cycles(EDGES))


def test_no_function_is_longer_than_the_limit():
    long = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{module}.{node.name}: {lines} lines")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)


def test_the_cycle_check_sees_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
