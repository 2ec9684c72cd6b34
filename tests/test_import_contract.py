"""Which package may import which: read from every module's import statements (ast), not run.

- ``worker`` takes from ``orchestrator`` only the contract (``orchestrator.protocol``), the
  settings and the dragon record's fields: a change inside the orchestrator never breaks a worker.
- ``orchestrator.protocol`` imports none of the parts it sits between.
- ``orchestrator.asl``, the pure core, imports none of the runtime, the API, the workers or the CLI.
- ``orchestrator.runtime`` knows nothing of what is served on top of it (the API, the dashboard),
  and nothing in ``orchestrator`` imports the workers or the CLI: dependencies point one way.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

WORKER_MAY_IMPORT = ("orchestrator.protocol", "orchestrator.settings", "orchestrator.dragon_record")
FORBIDDEN = {
    "orchestrator/protocol": (
        "orchestrator.runtime",
        "orchestrator.asl",
        "orchestrator.api",
        "worker",
        "producer",
    ),
    "orchestrator/asl": ("orchestrator.runtime", "orchestrator.api", "worker", "producer"),
    "orchestrator/runtime": ("orchestrator.api", "orchestrator.dashboard", "worker", "producer"),
    "orchestrator": ("worker", "producer"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, name: str) -> Iterator[tuple[int, str]]:
    """Each module the module ``name`` (at ``path``) imports, absolute, with its line.

    ``from . import x`` is resolved against ``name``; ``from a import b`` yields ``a`` and ``a.b``
    (``b`` may be a module).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name.split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            yield node.lineno, module
            for alias in node.names:  # ``from orchestrator import runtime`` imports a package too
                yield node.lineno, f"{module}.{alias.name}"


def modules_under(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def violations(folder: str, allowed: Callable[[str], bool], what: str) -> list[str]:
    """One line per import statement under ``folder`` that imports a module ``allowed`` refuses."""
    found = []
    for path in modules_under(folder):
        reported: set[int] = set()
        for line, module in imported_modules(path, module_name(path)):
            if not allowed(module) and line not in reported:
                reported.add(line)
                where = f"{path.relative_to(REPO)}:{line}"
                found.append(f"{where}: {module_name(path)} imports {module} ({what})")
    return found


def test_the_folders_checked_hold_modules() -> None:
    for folder in ("worker", *FORBIDDEN):
        assert modules_under(folder), f"no Python modules under {folder}: the contract checks nothing"


def test_a_worker_imports_of_the_orchestrator_only_the_protocol_the_settings_and_the_dragon_record() -> None:
    def allowed(module: str) -> bool:
        if not within(module, "orchestrator") or module == "orchestrator":
            return True
        return any(within(module, permitted) for permitted in WORKER_MAY_IMPORT)

    found = violations("worker", allowed, f"a worker may import only {', '.join(WORKER_MAY_IMPORT)}")
    assert found == [], "\n".join(found)


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_a_package_imports_none_of_the_parts_it_must_not_know(folder: str) -> None:
    forbidden = FORBIDDEN[folder]

    def allowed(module: str) -> bool:
        return not any(within(module, package) for package in forbidden)

    found = violations(folder, allowed, f"{folder} may import none of {', '.join(forbidden)}")
    assert found == [], "\n".join(found)


def test_the_check_reads_relative_and_from_imports(tmp_path: Path) -> None:
    """The reader itself: a relative import and a ``from package import module`` are both seen."""
    probe = tmp_path / "probe.py"
    source = "from orchestrator import runtime\nfrom .keys import Keys\nimport json\n"
    probe.write_text(source, encoding="utf-8")

    modules = [module for _, module in imported_modules(probe, "orchestrator.protocol.probe")]

    assert "orchestrator.runtime" in modules
    assert "orchestrator.protocol.keys" in modules
    assert "json" in modules
