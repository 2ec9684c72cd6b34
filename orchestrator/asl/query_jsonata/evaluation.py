"""JSONata expressions in ASL definitions, evaluated as AWS Step Functions evaluates them.

A state that uses the JSONata query language writes an expression as a string of the form
``"{% <expression> %}"``. This module recognises such strings, compiles them once, evaluates
them against the ``$states`` reserved variable and the workflow variables, and fills JSON
templates (``Arguments``, ``Output``, ``Assign`` values, ...) whose strings hold expressions.

What Step Functions adds to standard JSONata lives here too: the functions ``$partition``,
``$range``, ``$hash``, ``$random``, ``$uuid`` and ``$parse``; ``$eval`` is not available;
and JSON cannot hold JSONata's *undefined*, so an expression that yields nothing fails with
``States.QueryEvaluationError``.

Every cause produced here is the part of AWS's wording that names the expression, for
example ``The JSONata expression '$doesNotExist' specified for the field 'Output' returned
nothing (undefined).``; the engine puts AWS's state prefix in front of it
(``An error occurred while executing the state 'S' (entered at the event id #2). ``).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from jsonata import JException, Jsonata, Utils

from orchestrator.asl.errors import QUERY_EVALUATION_ERROR, StatesError
from orchestrator.asl.json_values import json_type
from orchestrator.asl.query_jsonata import functions as sfn_functions

EXPRESSION_START = "{%"
EXPRESSION_END = "%}"

# JSON type names as AWS spells them in "unexpected result type" causes.
ARRAY, OBJECT, STRING, NUMBER, BOOLEAN, NULL = "array", "object", "string", "number", "boolean", "null"

# JavaScript prints integral numbers below 1e21 without a fraction and larger ones in
# exponent form; AWS renders JSONata results the JavaScript way.
_LARGEST_PLAIN_INTEGER = 10**21

_COMPILED_EXPRESSIONS = 4096

# JSONata optimises tail calls, so a runaway expression loops instead of overflowing; a
# budget of evaluation steps stops it the same way on every run, without reading a clock.
MAX_EVALUATION_STEPS = 500_000


def is_expression(value: Any) -> bool:
    """Tell whether ``value`` is a JSONata expression string.

    AWS trims nothing: ``"{% $x %}"`` is an expression, ``" {% $x %} "`` is a plain string.

    Args:
        value: Any JSON value taken from a definition.

    Returns:
        True for a string that starts with ``{%`` and ends with ``%}``.
    """
    return (
        isinstance(value, str)
        and len(value) >= len(EXPRESSION_START) + len(EXPRESSION_END)
        and value.startswith(EXPRESSION_START)
        and value.endswith(EXPRESSION_END)
    )


def expression_body(text: str) -> str:
    """The expression inside ``{% ... %}`` without surrounding blanks, as AWS quotes it in causes.

    Args:
        text: An expression string, with or without its ``{% %}`` delimiters.

    Returns:
        The bare JSONata expression.
    """
    if is_expression(text):
        text = text[len(EXPRESSION_START) : -len(EXPRESSION_END)]
    return text.strip()


def compile_expression(text: str) -> object:
    """Parse an expression once; later calls with the same text reuse the parsed form.

    Args:
        text: An expression string, with or without its ``{% %}`` delimiters.

    Returns:
        The compiled expression, an opaque object for :func:`evaluate` to reuse.

    Raises:
        ValueError: The expression is not valid JSONata; the message names it and the problem.
    """
    body = expression_body(text)
    try:
        return _compiled(body)
    except JException as problem:
        raise ValueError(f"invalid JSONata expression '{body}': {describe_jsonata_error(problem)}") from None
    except Exception as problem:  # the parser has bugs that surface as Python errors
        raise ValueError(f"invalid JSONata expression '{body}': {problem}") from None


def evaluate(text: str, states: dict[str, Any], variables: dict[str, Any], *, field: str = "") -> Any:
    """Evaluate one ``"{% expr %}"`` string to a JSON value.

    Args:
        text: The expression string.
        states: The value of ``$states``: ``input``, ``context`` and, where they exist,
            ``result`` and ``errorOutput``.
        variables: The workflow variables in scope, each bound as ``$name``.
        field: Where the expression sits (``Output``, ``Arguments/FunctionName``, ``Items``,
            ...), quoted in causes as AWS quotes it.

    Returns:
        The result as plain JSON (dict, list, str, int, float, bool or None for null).

    Raises:
        StatesError: ``States.QueryEvaluationError`` when the expression fails, yields
            nothing (undefined) or yields a function.
    """
    body = expression_body(text)
    try:
        compiled = _compiled(body)
        result = _run(compiled, states, variables)
    except JException as problem:
        raise _evaluation_error(body, field, describe_jsonata_error(problem)) from None
    except sfn_functions.FunctionError as problem:
        raise _evaluation_error(body, field, str(problem)) from None
    except _RunawayEvaluation:
        detail = (
            f"The expression took more than {MAX_EVALUATION_STEPS} evaluation steps. Check for infinite loop"
        )
        raise _evaluation_error(body, field, detail) from None
    except RecursionError:
        raise _evaluation_error(body, field, _message_for("D1011")) from None
    except Exception as problem:  # the library surfaces some failures as Python errors
        raise _evaluation_error(body, field, str(problem)) from None
    if result is None:
        raise StatesError(QUERY_EVALUATION_ERROR, f"{_quoted(body, field)} returned nothing (undefined).")
    try:
        return _to_json(result)
    except _Unrepresentable:
        raise StatesError(
            QUERY_EVALUATION_ERROR, f"{_quoted(body, field)} returned an unsupported result type."
        ) from None
    except RecursionError:
        raise _evaluation_error(body, field, _message_for("D1011")) from None


def evaluate_as(
    text: str, states: dict[str, Any], variables: dict[str, Any], expected: str, *, field: str = ""
) -> Any:
    """Evaluate an expression whose field needs one JSON type, such as ``Items`` an array.

    Args:
        text: The expression string.
        states: The value of ``$states``.
        variables: The workflow variables in scope.
        expected: The JSON type the field needs: ``array``, ``object``, ``string``,
            ``number``, ``boolean`` or ``null``.
        field: Where the expression sits, quoted in causes.

    Returns:
        The result, of the expected type.

    Raises:
        StatesError: ``States.QueryEvaluationError`` as :func:`evaluate` raises it, or with
            AWS's "returned an unexpected result type" cause for a value of another type.
    """
    value = evaluate(text, states, variables, field=field)
    actual = json_type(value)
    if actual != expected:
        raise StatesError(
            QUERY_EVALUATION_ERROR,
            f"{_quoted(expression_body(text), field)} returned an unexpected result type. "
            f"Expected '{expected}', but was '{actual}' for value: {compact_json(value)}",
        )
    return value


def fill(template: Any, states: dict[str, Any], variables: dict[str, Any], *, field: str = "") -> Any:
    """Build a JSON value from a template whose strings may be JSONata expressions.

    Objects and arrays are walked to any depth; every expression string is replaced by its
    value, everything else is kept as written. A nested expression that yields nothing fails
    the state, as on AWS, with the field path extended by the keys leading to it
    (``Output/error``, ``Arguments/FunctionName``).

    Args:
        template: The field's value as written in the definition.
        states: The value of ``$states``.
        variables: The workflow variables in scope.
        field: The name of the field the template fills (``Arguments``, ``Output``, ...).

    Returns:
        A new JSON value; the template itself is left unchanged.

    Raises:
        StatesError: ``States.QueryEvaluationError`` from the first expression that fails.
    """
    if is_expression(template):
        return evaluate(template, states, variables, field=field)
    if isinstance(template, dict):
        return {
            key: fill(value, states, variables, field=_sub_field(field, key))
            for key, value in template.items()
        }
    if isinstance(template, list):
        return [
            fill(value, states, variables, field=_sub_field(field, str(index)))
            for index, value in enumerate(template)
        ]
    return template


def compact_json(value: Any) -> str:
    """JSON text without blanks, as AWS quotes values in causes (``{"foo":"bar"}``)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def describe_jsonata_error(problem: JException) -> str:
    """``CODE: message`` for a JSONata error, worded as the JavaScript JSONata words it.

    Args:
        problem: An error raised by the JSONata library.

    Returns:
        For example ``T1006: Attempted to invoke a non-function``.
    """
    code = problem.error
    if code in JException.error_codes:
        inserts = [problem.current, problem.expected, problem.extra]
        return f"{code}: {_render(_template_for(code), inserts)}"
    # Some library errors carry their finished message where the code belongs.
    known_code = _CODE_BY_MESSAGE.get(code)
    return f"{known_code}: {code}" if known_code else str(code)


class _RunawayEvaluation(Exception):
    """An evaluation that used up its step budget."""


class _StepBudget:
    """Counts evaluation steps; the library calls it on entering every node of the expression."""

    def __init__(self, steps: int) -> None:
        self.remaining = steps

    def __call__(self, node: object, focus: object, frame: object) -> None:
        self.remaining -= 1
        if self.remaining < 0:
            raise _RunawayEvaluation


class _Unrepresentable(Exception):
    """A result that JSON cannot hold (a function, NaN, an infinity)."""


@functools.lru_cache(maxsize=_COMPILED_EXPRESSIONS)
def _compiled(body: str) -> Jsonata:
    expression = Jsonata(body)
    if expression.get_errors():
        raise expression.get_errors()[0]
    expression.set_output_convert_nulls(False)
    return expression


def _run(compiled: Jsonata, states: dict[str, Any], variables: dict[str, Any]) -> Any:
    # The library evaluates through the instance last made current on this thread; making
    # this one current keeps $now(), $millis() and nested evaluations consistent with it.
    Jsonata.CURRENT.jsonata = compiled
    return compiled.evaluate(None, _bindings(states, variables))


def _bindings(states: dict[str, Any], variables: Mapping[str, Any]) -> dict[str, Any]:
    bindings: dict[str, Any] = dict(sfn_functions.bindings(states))
    # A binding of None reads as undefined; JSON null has its own marker.
    bindings.update({name: _null_marked(value) for name, value in variables.items()})
    bindings["states"] = _null_marked(states)
    bindings["__evaluate_entry"] = _StepBudget(MAX_EVALUATION_STEPS)
    return bindings


def _null_marked(value: Any) -> Any:
    return Utils.NULL_VALUE if value is None else value


def _to_json(value: Any) -> Any:
    """Plain JSON from a JSONata result; inside containers None is a null from the input."""
    if value is None or value is Utils.NULL_VALUE:
        return None
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if abs(value) < _LARGEST_PLAIN_INTEGER else float(value)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, dict):
        return {key: _to_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_json(item) for item in value]
    raise _Unrepresentable(type(value).__name__)


def _number(value: float) -> int | float:
    if not math.isfinite(value):
        raise _Unrepresentable(repr(value))
    if value.is_integer() and abs(value) < _LARGEST_PLAIN_INTEGER:
        return int(value)
    return value


def _sub_field(field: str, key: str) -> str:
    return f"{field}/{key}" if field else key


def _quoted(body: str, field: str) -> str:
    where = f" specified for the field '{field}'" if field else ""
    return f"The JSONata expression '{body}'{where}"


def _evaluation_error(body: str, field: str, detail: str) -> StatesError:
    return StatesError(
        QUERY_EVALUATION_ERROR, f"{_quoted(body, field)} threw an error during evaluation. {detail}"
    )


def _template_for(code: str) -> str:
    # The library's message table says "Object" wherever JavaScript JSONata says "function".
    return JException.error_codes[code].replace("Object", "function")


def _message_for(code: str) -> str:
    return f"{code}: {_template_for(code)}"


_INSERT = re.compile(r"\{\{\{(\w+)\}\}\}|\{\{(\w+)\}\}")


def _render(template: str, inserts: list[Any]) -> str:
    """Fill a message template: ``{{{x}}}`` takes the text, ``{{x}}`` the JSON of the insert."""
    remaining = iter(inserts)

    def insert(match: re.Match[str]) -> str:
        value = next(remaining, None)
        return str(value) if match.group(1) else _javascript_json(value)

    return _INSERT.sub(insert, template)


def _javascript_json(value: Any) -> str:
    if value is None:
        return "undefined"
    try:
        return compact_json(_to_json(value))
    except (_Unrepresentable, TypeError, ValueError):
        return str(value)
    except RecursionError:
        return "<a value nested too deeply to show>"


_CODE_BY_MESSAGE = {
    _template_for(code): code for code, template in JException.error_codes.items() if "{{" not in template
}
