"""The pure core's modules import each other at the top, in one direction, with no cycle.

An import inside a function usually hides a cycle between two modules that should have
had their shared piece moved into a lower one. The only exception is jsonpath <-> jsonpath_filter,
a mutual recursion of the JSONPath grammar itself (a filter holds paths, a path holds filters).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ASL = Path(__file__).resolve().parent.parent / "orchestrator" / "asl"

# (importing module, imported module): function-level imports that are allowed, each with a
# comment at the import saying why.
ALLOWED_FUNCTION_IMPORTS = {("orchestrator.asl.jsonpath", "orchestrator.asl.jsonpath_filter")}


def module_name(path: Path) -> str:
    parts = path.relative_to(ASL.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(ASL.rglob("*.py"))}


def imported_modules(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The orchestrator modules an import statement loads (``from package import module`` included)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.startswith("orchestrator")]
    base = node.module or ""
    if not base.startswith("orchestrator"):
        return []
    names = [f"{base}.{alias.name}" for alias in node.names]
    return [name for name in names if name in MODULES] or [base]


def imports(path: Path, *, at_top: bool) -> set[str]:
    """The orchestrator modules ``path`` imports at module level (``at_top``) or inside functions."""
    tree = ast.parse(path.read_text(), str(path))
    top_level = {id(node) for node in tree.body}
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom) and (id(node) in top_level) == at_top:
            found.update(imported_modules(node))
    return found


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_of_the_core_imports_an_orchestrator_module_inside_a_function(module: str) -> None:
    hidden = {(module, imported) for imported in imports(MODULES[module], at_top=False)}
    assert hidden <= ALLOWED_FUNCTION_IMPORTS, f"{module} imports inside a function: {sorted(hidden)}"


def test_the_core_s_module_level_imports_form_no_cycle() -> None:
    graph = {name: sorted(imports(path, at_top=True) & MODULES.keys()) for name, path in MODULES.items()}
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_the_core_imports_nothing_of_the_runtime_or_the_processes() -> None:
    outside = {
        (name, imported)
        for name, path in MODULES.items()
        for at_top in (True, False)
        for imported in imports(path, at_top=at_top)
        if not imported.startswith("orchestrator.asl")
    }
    assert outside == set()


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """One cycle of ``graph`` as the list of its modules (the first repeated at the end), or None."""
    done: set[str] = set()
    for start in graph:
        path, pending = [start], [iter(graph[start])]
        while pending:
            following = next(pending[-1], None)
            if following is None:
                done.add(path.pop())
                pending.pop()
            elif following in path:
                return [*path[path.index(following) :], following]
            elif following not in done:
                path.append(following)
                pending.append(iter(graph[following]))
    return None
