"""JSONPath-mode input and output processing of a state (ASL "Input and Output Processing").

A state's raw input goes through InputPath, then a payload template (Parameters,
ItemSelector, ...); its result goes through ResultSelector, ResultPath and OutputPath.

Every failure is a ``StatesError`` whose cause is AWS's wording *after* the prefix
``An error occurred while executing the state 'S' (entered at the event id #N).``, which
the caller adds because only it knows the state and the event.

Values are treated as immutable: nothing here modifies its arguments, and a result may
share unchanged parts with them (ResultPath copies only the objects along its path), so a
caller that wants to modify a value in place must copy it first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.asl import intrinsics
from orchestrator.asl.errors import RESULT_PATH_MATCH_FAILURE, RUNTIME, PathNotFound, StatesError
from orchestrator.asl.json_values import CONTAINER_TYPES as _CONTAINER_TYPES
from orchestrator.asl.jsonpath import JsonPath, PathSyntaxError, UnmatchedPath, compile_path, render_json

_TEMPLATE_PATH_SUFFIX = ".$"


class Scope:
    """What the paths of one state can see.

    Attributes:
        input: the document ``$`` refers to.
        context: the context object ``$$`` refers to; given, or made by ``make_context``
            the first time a path asks for it (most states never do).
        variables: the workflow variables ``$name`` refers to (set by Assign); may be empty.
    """

    __slots__ = ("_context", "_make_context", "input", "variables")

    def __init__(
        self,
        input: Any,
        context: dict[str, Any] | None,
        variables: dict[str, Any],
        make_context: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.input = input
        self.variables = variables
        self._context = context
        self._make_context = make_context

    @property
    def context(self) -> dict[str, Any]:
        if self._context is None:
            self._context = self._make_context() if self._make_context is not None else {}
        return self._context


def resolve_path(path: str, scope: Scope) -> Any:
    """The value ``path`` selects: ``$$...`` in the context, ``$name...`` a variable, ``$...`` the input.

    Raises:
        PathNotFound: a definite path selects nothing (an ``UnmatchedPath`` with AWS's reason).
        PathSyntaxError: ``path`` is not valid JSONPath.
    """
    compiled = compile_path(path)
    return compiled.query(document_for(compiled, scope))


def document_for(compiled: JsonPath, scope: Scope) -> Any:
    root = compiled.root
    if root == "$":
        return scope.input
    if root == "$$":
        return scope.context
    if root == "var" and compiled.variable in scope.variables:
        return scope.variables[compiled.variable]
    raise UnmatchedPath(compiled.text, scope.variables, f"No results for path: {compiled.text}")


def select_input(input_path: str | None, state_input: Any, scope: Scope) -> Any:
    """Apply InputPath: the caller passes ``state.get("InputPath", "$")``; None (JSON null) gives ``{}``.

    Raises:
        StatesError: States.Runtime when the path selects nothing.
    """
    if input_path == "$":
        return state_input
    if input_path is None:
        return {}
    return _select(input_path, state_input, scope)


def select_output(output_path: str | None, value: Any, scope: Scope) -> Any:
    """Apply OutputPath: the caller passes ``state.get("OutputPath", "$")``; None (JSON null) gives ``{}``.

    Raises:
        StatesError: States.Runtime when the path selects nothing.
    """
    if output_path == "$":
        return value
    if output_path is None:
        return {}
    return _select(output_path, value, scope)


def _select(path: str, document: Any, scope: Scope) -> Any:
    """``path`` applied to ``document`` when it reads ``$``, else to the context or a variable."""
    try:
        compiled = compile_path(path)
        if compiled.root == "$":
            return compiled.query(document)
        return compiled.query(document_for(compiled, scope))
    except UnmatchedPath as missing:
        raise StatesError(RUNTIME, f"Invalid path '{path}' : {missing.reason}") from None
    except PathSyntaxError as error:
        raise StatesError(RUNTIME, f"Invalid path '{path}' : {error}") from None


def fill_template(template: Any, scope: Scope, field: str = "Parameters") -> Any:
    """Build a payload from a template (Parameters, ResultSelector, ItemSelector, Assign, ...).

    A key ending in ``.$`` takes the value its path or intrinsic function call gives, under
    the key without the suffix; objects and arrays recurse; other values are copied as they
    are. ``field`` names the template's field for the reader; AWS words errors by key.

    A template is compiled on first use and the compiled form is kept while the template
    object lives in the cache, so templates (parts of a definition) must not be modified.

    Raises:
        StatesError: States.Runtime when a path selects nothing or a ``.$`` value is not a
            path or intrinsic call; States.IntrinsicFailure from an intrinsic function.
    """
    if not isinstance(template, _CONTAINER_TYPES):
        return template
    entry = _compiled_templates.get(id(template))
    if entry is None or entry[0] is not template:
        if len(_compiled_templates) >= _TEMPLATE_CACHE_SIZE:
            _compiled_templates.clear()
        entry = (template, _compile_template(template))
        # Holding the template itself keeps its id from being reused by another object.
        _compiled_templates[id(template)] = entry
    return entry[1](scope)


Filler = Callable[[Scope], Any]
_TEMPLATE_CACHE_SIZE = 4096
_compiled_templates: dict[int, tuple[Any, Filler]] = {}


def _compile_template(template: Any) -> Filler:
    if isinstance(template, dict):
        members = [(_output_key(key), _member_filler(key, value)) for key, value in template.items()]
        return lambda scope: {key: fill(scope) for key, fill in members}
    if isinstance(template, list):
        items = [_compile_template(item) for item in template]
        return lambda scope: [fill(scope) for fill in items]
    return lambda scope: template


def _output_key(key: str) -> str:
    return key[: -len(_TEMPLATE_PATH_SUFFIX)] if key.endswith(_TEMPLATE_PATH_SUFFIX) else key


def _member_filler(key: str, value: Any) -> Filler:
    if not key.endswith(_TEMPLATE_PATH_SUFFIX):
        return _compile_template(value)
    if isinstance(value, str) and value.startswith("$"):
        return _path_filler(key, value)
    if isinstance(value, str) and intrinsics.is_intrinsic(value):
        return lambda scope: intrinsics.evaluate(value, lambda path: _field_path_value(key, path, scope))
    cause = f"The value for the field '{key}' must be a valid JSONPath or a valid intrinsic function call"
    return _failing(StatesError(RUNTIME, cause))


def _failing(error: StatesError) -> Filler:
    def fail(scope: Scope) -> Any:
        raise StatesError(error.error, error.cause)

    return fail


def _path_filler(key: str, path: str) -> Filler:
    try:
        compiled = compile_path(path)
    except PathSyntaxError as error:
        return _failing(
            StatesError(RUNTIME, f"The JSONPath '{path}' specified for the field '{key}' is invalid: {error}")
        )
    if compiled.root != "$":
        return lambda scope: _field_path_value(key, path, scope)
    query = compiled.query

    def fill_from_input(scope: Scope) -> Any:
        document = scope.input
        if document is None:
            raise StatesError(RUNTIME, _NULL_INPUT)
        try:
            return query(document)
        except PathNotFound:
            raise _not_found(key, path, scope) from None

    return fill_from_input


def _field_path_value(key: str, path: str, scope: Scope) -> Any:
    try:
        compiled = compile_path(path)
    except PathSyntaxError as error:
        raise StatesError(
            RUNTIME, f"The JSONPath '{path}' specified for the field '{key}' is invalid: {error}"
        ) from None
    if compiled.root == "$" and scope.input is None:
        raise StatesError(RUNTIME, _NULL_INPUT)
    try:
        return compiled.query(document_for(compiled, scope))
    except PathNotFound:
        raise _not_found(key, path, scope) from None


_NULL_INPUT = "Unable to apply Path transformation to null or empty input."


def _not_found(key: str, path: str, scope: Scope) -> StatesError:
    return StatesError(
        RUNTIME,
        f"The JSONPath '{path}' specified for the field '{key}' could not be found "
        f"in the input '{render_json(scope.input)}'",
    )


def merge_result(result_path: str | None, state_input: Any, result: Any) -> Any:
    """Apply ResultPath: the caller passes ``state.get("ResultPath", "$")``.

    ``"$"`` makes the result the output; None (JSON null) discards the result and keeps the
    input; a path like ``$.a.b`` gives a copy of the input with the result placed there,
    creating the objects on the way. The input itself is never modified.

    Raises:
        StatesError: States.ResultPathMatchFailure when the result cannot be placed there.
    """
    if result_path == "$":
        return result
    if result_path is None:
        return state_input
    compiled = compile_path(result_path)
    if compiled.root != "$" or compiled.keys is None or compiled.length:
        raise StatesError(
            RUNTIME, f"Invalid path '{result_path}' : not a reference path into the state input"
        )
    keys = compiled.keys
    if len(keys) == 1 and type(state_input) is dict and type(keys[0]) is str:
        # ResultPath "$.name" on an object, the common case, without the general walk.
        placed = dict(state_input)
        placed[keys[0]] = result
        return placed
    try:
        return _placed(state_input, keys, 0, result)
    except LookupError:
        raise StatesError(
            RESULT_PATH_MATCH_FAILURE,
            f"Unable to apply ResultPath '{result_path}' to input '{render_json(state_input)}'",
        ) from None


def _placed(node: Any, keys: tuple[str | int, ...], depth: int, result: Any) -> Any:
    """A copy of ``node`` with ``result`` at ``keys[depth:]``; raises LookupError when it cannot go there."""
    if depth == len(keys):
        return result
    key = keys[depth]
    if isinstance(key, str):
        if not isinstance(node, dict):
            raise LookupError(key)
        placed = dict(node)
        # A missing object on the way is created; a missing array element cannot be.
        child = node.get(key, {})
        placed[key] = _placed(child, keys, depth + 1, result)
        return placed
    if not isinstance(node, list) or not -len(node) <= key < len(node):
        raise LookupError(key)
    placed_list = list(node)
    placed_list[key] = _placed(node[key], keys, depth + 1, result)
    return placed_list
