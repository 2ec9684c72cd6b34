"""Intrinsic functions of the Amazon States Language (``States.Format(...)`` and the rest).

A ``.$`` field whose value starts with ``States.`` is an intrinsic call rather than a path.
``parse`` checks a call once (names, argument counts, placeholders of a literal format
string) and is what definition validation uses; ``evaluate`` computes its value, reading
path arguments through the caller's ``resolve`` so that this module never sees the input,
the context object or the variables itself.

Errors at run time are ``StatesError(States.IntrinsicFailure, cause)``; a path argument that
selects nothing raises the ``PathNotFound`` of ``resolve`` unchanged, so that the caller words
it for the field it was evaluating. The cause is the part of AWS's text that follows its
``An error occurred while executing the state ...`` prefix, which the caller adds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from orchestrator.asl.errors import INTRINSIC_FAILURE, StatesError
from orchestrator.asl.intrinsics.functions import ARITY, FUNCTIONS, format_string, template_pieces
from orchestrator.asl.intrinsics.syntax import Argument, Call, CallParser, Literal, PathArgument

__all__ = ["Call", "Literal", "PathArgument", "evaluate", "is_intrinsic", "parse"]

_PREFIX = "States."
_FORMAT = "States.Format"
# Expressions in a definition are few and evaluated many times; this bounds the cache anyway.
_CACHE_SIZE = 4096


def is_intrinsic(text: str) -> bool:
    """Tell whether a ``.$`` field's value is an intrinsic call rather than a path.

    Args:
        text: the string value of a field whose name ends in ``.$``.

    Returns:
        True for ``States.Format(...)`` and the like (even when malformed, so that ``parse``
        reports what is wrong with it), False for paths such as ``$.a`` or ``$$.Execution``.
    """
    return text.startswith(_PREFIX)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def parse(expression: str) -> Call:
    """Parse an intrinsic call and check what can be checked before running it.

    Args:
        expression: e.g. ``"States.Format('Hello {}', $.name)"``.

    Returns:
        The parsed call, shared between callers (it is immutable).

    Raises:
        ValueError: the text is not a call, names an unknown function, gives a function the
            wrong number of arguments, or has a literal format string whose placeholders do
            not match the values after it; the message names the problem and its position.
    """
    call = CallParser(expression, ARITY).parse()
    _check_format_placeholders(call, expression)
    return call


def evaluate(expression: str, resolve: Callable[[str], Any]) -> Any:
    """Evaluate an intrinsic call.

    Args:
        expression: the call, as written in the definition.
        resolve: returns the value a path argument (``$.x``, ``$$.Execution.Id``, ``$name``,
            ``$``) selects, or raises ``PathNotFound``.

    Returns:
        The JSON value the call produces.

    Raises:
        StatesError: ``States.IntrinsicFailure`` when the expression does not parse or a
            function refuses its arguments.
        PathNotFound: from ``resolve``, for a path argument that selects nothing.
    """
    try:
        call = parse(expression)
    except ValueError as error:
        raise StatesError(INTRINSIC_FAILURE, str(error)) from None
    try:
        return _call_value(call, resolve)
    except RecursionError:
        # A value nested deeper than the stack allows (an argument read from the input).
        raise StatesError(
            INTRINSIC_FAILURE, f"a value in intrinsic {expression!r} is nested too deeply to process"
        ) from None


def _call_value(call: Call, resolve: Callable[[str], Any]) -> Any:
    values = [_argument_value(argument, resolve) for argument in call.arguments]
    if call.name == _FORMAT:
        return format_string(_format_pieces(call.arguments[0], values[0]), values[1:])
    function, _, _ = FUNCTIONS[call.name]
    return function(*values)


def _argument_value(argument: Argument, resolve: Callable[[str], Any]) -> Any:
    if isinstance(argument, Literal):
        return argument.value
    if isinstance(argument, PathArgument):
        return resolve(argument.path)
    return _call_value(argument, resolve)


def _format_pieces(template: Argument, value: Any) -> list[str]:
    # A literal template keeps its escaped braces apart from its placeholders; a template
    # read from data has no escapes, so every '{}' in it is a placeholder.
    if isinstance(template, Literal) and isinstance(template.value, str):
        return list(template.pieces)
    return template_pieces(value)


def _check_format_placeholders(call: Call, expression: str) -> None:
    if call.name == _FORMAT:
        template = call.arguments[0]
        if isinstance(template, Literal) and not isinstance(template.value, str):
            raise ValueError(
                f"the format string of States.Format must be a string "
                f"at position {call.position} of intrinsic {expression!r}"
            )
        if isinstance(template, Literal):
            placeholders = len(template.pieces) - 1
            values = len(call.arguments) - 1
            if placeholders != values:
                raise ValueError(
                    f"States.Format has {placeholders} placeholder(s) but {values} value(s) "
                    f"at position {call.position} of intrinsic {expression!r}"
                )
    for argument in call.arguments:
        if isinstance(argument, Call):
            _check_format_placeholders(argument, expression)
