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

from dataclasses import dataclass
from typing import Any

from orchestrator.asl import intrinsics
from orchestrator.asl.errors import RESULT_PATH_MATCH_FAILURE, RUNTIME, PathNotFound, StatesError
from orchestrator.asl.jsonpath import JsonPath, PathSyntaxError, UnmatchedPath, compile_path, render_json

_TEMPLATE_PATH_SUFFIX = ".$"


@dataclass(slots=True)
class Scope:
    """What the paths of one state can see.

    Attributes:
        input: the document ``$`` refers to.
        context: the context object ``$$`` refers to.
        variables: the workflow variables ``$name`` refers to (set by Assign); may be empty.
    """

    input: Any
    context: dict[str, Any]
    variables: dict[str, Any]


def resolve_path(path: str, scope: Scope) -> Any:
    """The value ``path`` selects: ``$$...`` in the context, ``$name...`` a variable, ``$...`` the input.

    Raises:
        PathNotFound: a definite path selects nothing (an ``UnmatchedPath`` with AWS's reason).
        PathSyntaxError: ``path`` is not valid JSONPath.
    """
    compiled = compile_path(path)
    return compiled.query(_document_for(compiled, scope))


def _document_for(compiled: JsonPath, scope: Scope) -> Any:
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
    return _select(input_path, Scope(state_input, scope.context, scope.variables))


def select_output(output_path: str | None, value: Any, scope: Scope) -> Any:
    """Apply OutputPath: the caller passes ``state.get("OutputPath", "$")``; None (JSON null) gives ``{}``.

    Raises:
        StatesError: States.Runtime when the path selects nothing.
    """
    if output_path == "$":
        return value
    if output_path is None:
        return {}
    return _select(output_path, Scope(value, scope.context, scope.variables))


def _select(path: str, scope: Scope) -> Any:
    try:
        return resolve_path(path, scope)
    except UnmatchedPath as missing:
        raise StatesError(RUNTIME, f"Invalid path '{path}' : {missing.reason}") from None
    except PathSyntaxError as error:
        raise StatesError(RUNTIME, f"Invalid path '{path}' : {error}") from None


def fill_template(template: Any, scope: Scope, field: str = "Parameters") -> Any:
    """Build a payload from a template (Parameters, ResultSelector, ItemSelector, Assign, ...).

    A key ending in ``.$`` takes the value its path or intrinsic function call gives, under
    the key without the suffix; objects and arrays recurse; other values are copied as they are.

    Raises:
        StatesError: States.Runtime when a path selects nothing or a ``.$`` value is not a
            path or intrinsic call; States.IntrinsicFailure from an intrinsic function.
    """
    if isinstance(template, dict):
        return {_output_key(key): _field_value(key, value, scope, field) for key, value in template.items()}
    if isinstance(template, list):
        return [fill_template(item, scope, field) for item in template]
    return template


def _output_key(key: str) -> str:
    return key[: -len(_TEMPLATE_PATH_SUFFIX)] if key.endswith(_TEMPLATE_PATH_SUFFIX) else key


def _field_value(key: str, value: Any, scope: Scope, field: str) -> Any:
    if not key.endswith(_TEMPLATE_PATH_SUFFIX):
        return fill_template(value, scope, field) if isinstance(value, dict | list) else value
    if isinstance(value, str) and value.startswith("$"):
        return _resolve_field_path(key, value, scope)
    if isinstance(value, str) and intrinsics.is_intrinsic(value):
        return intrinsics.evaluate(value, lambda path: _resolve_field_path(key, path, scope))
    raise StatesError(
        RUNTIME,
        f"The value for the field '{key}' must be a valid JSONPath or a valid intrinsic function call",
    )


def _resolve_field_path(key: str, path: str, scope: Scope) -> Any:
    try:
        compiled = compile_path(path)
    except PathSyntaxError as error:
        raise StatesError(
            RUNTIME, f"The JSONPath '{path}' specified for the field '{key}' is invalid: {error}"
        ) from None
    if compiled.root == "$" and scope.input is None:
        raise StatesError(RUNTIME, "Unable to apply Path transformation to null or empty input.")
    try:
        return compiled.query(_document_for(compiled, scope))
    except PathNotFound:
        raise StatesError(
            RUNTIME,
            f"The JSONPath '{path}' specified for the field '{key}' could not be found "
            f"in the input '{render_json(scope.input)}'",
        ) from None


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
    try:
        return _placed(state_input, compiled.keys, 0, result)
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
