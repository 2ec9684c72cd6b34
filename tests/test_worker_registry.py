"""The function registry: only (event, context) functions, only by registered name."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from worker.registry import FunctionRegistry, default_registry, is_handler, lookup

MIXED_FUNCTIONS = textwrap.dedent(
    """
    from fnmatch import fnmatch
    from worker.dragons import ValidateDragon

    LIMIT = 3

    def greet(event, context):
        return {"hello": event["name"]}

    def positional_only(event, context, /):
        return event

    def two_plain_parameters(a, b):
        return a + b

    def three_parameters(event, context, extra):
        return event

    def defaulted_context(event, context=None):
        return event

    def keyword_only_context(event, *, context):
        return event

    def varargs(*args):
        return args

    def _private(event, context):
        return event

    class Handler:
        def __call__(self, event, context):
            return event

    handler_instance = Handler()
    anonymous = lambda event, context: event
    """
)


@pytest.fixture
def functions_file(tmp_path: Path) -> Path:
    path = tmp_path / "mixed_functions.py"
    path.write_text(MIXED_FUNCTIONS)
    return path


def test_loading_a_file_registers_only_its_own_event_context_functions(functions_file: Path) -> None:
    registry = FunctionRegistry()

    loaded = registry.load_functions(str(functions_file))

    assert loaded == ["greet", "positional_only"]
    assert registry.names() == ["greet", "positional_only"]
    assert registry.lookup("greet")({"name": "Smok"}, None) == {"hello": "Smok"}


@pytest.mark.parametrize(
    "name",
    [
        "two_plain_parameters",
        "three_parameters",
        "defaulted_context",
        "keyword_only_context",
        "varargs",
        "_private",
        "Handler",
        "handler_instance",
        "anonymous",
        "fnmatch",
        "ValidateDragon",
        "LIMIT",
    ],
)
def test_a_file_member_that_is_not_its_own_handler_stays_unregistered(
    functions_file: Path, name: str
) -> None:
    registry = FunctionRegistry()
    registry.load_functions(str(functions_file))

    assert registry.lookup(name) is None


def test_a_module_name_loads_like_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "dragon_extras.py").write_text("def Roar(event, context):\n    return 'roar'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = FunctionRegistry()

    assert registry.load_functions("dragon_extras") == ["Roar"]
    assert registry.lookup("Roar")(None, None) == "roar"


def test_a_missing_file_or_module_is_an_import_error() -> None:
    registry = FunctionRegistry()

    with pytest.raises(ImportError):
        registry.load_functions("/nonexistent/functions.py")
    with pytest.raises(ImportError):
        registry.load_functions("no_such_module_anywhere")


@pytest.mark.parametrize("name", ["Unknown", "os.system", "worker.dragons.AddDragon", "builtins.eval", ""])
def test_a_name_nobody_registered_is_none_even_when_it_looks_like_an_import_path(name: str) -> None:
    assert lookup(name) is None


def test_the_default_registry_holds_the_dragon_functions() -> None:
    assert {"ValidateDragon", "AddDragon"} <= set(default_registry.names())


def test_register_replaces_and_unregister_forgets() -> None:
    registry = FunctionRegistry()

    registry.register("F", lambda event, context: 1)
    registry.register("F", lambda event, context: 2)
    assert registry.lookup("F")(None, None) == 2

    registry.unregister("F")
    assert registry.lookup("F") is None


def test_builtins_without_a_signature_are_not_handlers() -> None:
    assert not is_handler(print)
