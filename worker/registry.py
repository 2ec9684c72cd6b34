"""The functions a worker may run, known by name only (the Lambda role's function list).

A task names its function by registry name, never by import path, so nothing a task says
can make a worker import or call code that was not registered here on purpose.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from worker.dragons import AddDragon, ValidateDragon

Handler = Callable[[Any, Any], Any]
"""A function with the Lambda handler signature ``(event, context)``."""

HANDLER_PARAMETERS = ("event", "context")


class FunctionRegistry:
    """Registered functions by name."""

    def __init__(self) -> None:
        self._functions: dict[str, Handler] = {}

    def register(self, name: str, fn: Handler) -> None:
        """Make ``fn`` runnable by tasks that name ``name``; a later registration replaces it."""
        if not name:
            raise ValueError("a function needs a non-empty name")
        if not callable(fn):
            raise TypeError(f"{name!r} is not callable")
        self._functions[name] = fn

    def lookup(self, name: str) -> Handler | None:
        """The function registered as ``name``, or None when nobody registered it."""
        return self._functions.get(name)

    def unregister(self, name: str) -> None:
        """Forget ``name``; tasks naming it fail as Lambda.ResourceNotFoundException from now on."""
        self._functions.pop(name, None)

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._functions)

    def load_functions(self, spec: str) -> list[str]:
        """Import a Python file or a module and register each of its Lambda handlers.

        A handler is a public top-level function defined in that module under its own name
        (``def``, not an alias or a lambda) whose parameters are exactly ``(event, context)``;
        everything else in it, including what it merely imports, stays out of the registry.

        Args:
            spec: a path to a ``.py`` file, or an importable module name.

        Returns:
            The names registered, sorted.
        """
        module = import_functions_module(spec)
        handlers = handlers_of(module)
        for name, fn in handlers.items():
            self.register(name, fn)
        return sorted(handlers)


def import_functions_module(spec: str) -> ModuleType:
    """The module that ``spec`` names: a ``.py`` file path, or a module name.

    Raises:
        ImportError: when the file or module cannot be found or imported.
    """
    path = Path(spec)
    if spec.endswith(".py") or path.is_file():
        return import_file(path)
    return importlib.import_module(spec)


def import_file(path: Path) -> ModuleType:
    """Import the Python file at ``path`` as a module named after its stem."""
    if not path.is_file():
        raise ImportError(f"no Python file at {path}")
    module_name = f"redstep_functions_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: dataclasses and typing look a module up by name while it executes.
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def handlers_of(module: ModuleType) -> dict[str, Handler]:
    """The Lambda handlers that ``module`` itself defines, by name."""
    return {
        name: fn
        for name, fn in vars(module).items()
        if not name.startswith("_")
        and inspect.isfunction(fn)
        and fn.__name__ == name
        and fn.__module__ == module.__name__
        and is_handler(fn)
    }


def is_handler(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` takes exactly ``(event, context)``: two positional parameters, no others."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in parameters) == HANDLER_PARAMETERS and all(
        p.kind in positional and p.default is inspect.Parameter.empty for p in parameters
    )


def _default_registry() -> FunctionRegistry:
    registry = FunctionRegistry()
    registry.register("ValidateDragon", ValidateDragon)
    registry.register("AddDragon", AddDragon)
    return registry


default_registry = _default_registry()
"""The registry a worker process runs from: the dragon functions plus what it loads."""


def register(name: str, fn: Handler) -> None:
    """Register ``fn`` as ``name`` in the default registry."""
    default_registry.register(name, fn)


def lookup(name: str) -> Handler | None:
    """The function registered as ``name`` in the default registry, or None."""
    return default_registry.lookup(name)


def load_functions(spec: str) -> list[str]:
    """Load the handlers of a file or module into the default registry; see FunctionRegistry."""
    return default_registry.load_functions(spec)
