"""The Choice state: which state comes next, and what is wrong with a Choice rule.

A JSONPath-mode rule is either a comparison (``Variable`` plus one operator such as
``NumericEquals`` or ``StringLessThanPath``) or a combination of rules (``And``, ``Or``,
``Not``). A JSONata-mode rule has a ``Condition`` instead. Comparisons follow AWS: a value of
the wrong type simply does not match (``NumericEquals`` against a string, a bool against a
number), while a ``Variable`` or ``...Path`` that selects nothing fails the execution with
``States.Runtime``; only ``IsPresent`` asks whether a path selects something.

Causes are AWS's wording without the prefix AWS puts before every state failure
("An error occurred while executing the state 'X' (entered at the event id #N). "): only
the engine knows the state's name and event id, so it adds that prefix.
"""

from __future__ import annotations

import functools
import json
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from orchestrator.asl.errors import (
    NO_CHOICE_MATCHED,
    QUERY_EVALUATION_ERROR,
    RUNTIME,
    PathNotFound,
    Problem,
    StatesError,
)
from orchestrator.asl.json_values import NUMBER_TYPES as _NUMBER_TYPES
from orchestrator.asl.json_values import json_type

Resolve = Callable[[str], Any]

# A Choice with no matching rule and no Default fails with States.NoChoiceMatched (the ASL
# specification's "Errors" table and the Developer Guide's "Error names": "A Choice state
# failed to find a match for the condition field extracted from its input"); the cause is
# the Developer Guide's wording for it ("Choice workflow state": "the state machine will
# throw an error due to a failure to transition out of the state").
NO_NEXT_STATE_CAUSE = "Failed to transition out of the state. The state does not point to a next state."

COMBINATORS = ("And", "Or", "Not")
PATH_SUFFIX = "Path"


@dataclass(frozen=True)
class Comparison:
    """How one comparison operator reads its two operands and compares them.

    ``key`` turns a JSON value into something comparable, or None when the value is not of
    the operator's type (which makes the comparison false rather than an error).
    """

    operand_type: str
    key: Callable[[Any], Any]
    test: Callable[[Any, Any], bool]


def _string_key(value: Any) -> bytes | None:
    # UTF-16 code-unit order, as Java's String.compareTo orders text, which we take to be
    # AWS's order; it differs from Python's code-point order only for characters above U+FFFF.
    return value.encode("utf-16-be", "surrogatepass") if isinstance(value, str) else None


def _plain_string(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _number_key(value: Any) -> int | float | None:
    is_number = isinstance(value, _NUMBER_TYPES) and not isinstance(value, bool)
    return value if is_number else None


def _boolean_key(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:Z|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def timestamp_key(value: Any) -> tuple[datetime, int] | None:
    """The instant an RFC 3339 timestamp names, or None if ``value`` is not one.

    As the ASL specification requires, the ``T`` and ``Z`` must be uppercase and an offset
    is mandatory. The instant is (UTC time to the second, nanoseconds), so fractions finer
    than Python's microseconds still order correctly.
    """
    match = _TIMESTAMP.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    if int(off_m or 0) > 59:
        return None
    try:
        offset = timedelta(hours=int(off_h or 0), minutes=int(off_m or 0))
        zone = timezone(-offset if sign == "-" else offset)
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=zone)
    except ValueError:
        return None
    nanoseconds = int((fraction or "0")[:9].ljust(9, "0"))
    return moment.astimezone(UTC), nanoseconds


@functools.lru_cache(maxsize=256)
def _wildcard_regex(pattern: str) -> re.Pattern[str]:
    """A regex for a StringMatches pattern: ``*`` is any text, ``\\*`` and ``\\\\`` are literal."""
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and pattern[index + 1 : index + 2] in ("*", "\\"):
            parts.append(re.escape(pattern[index + 1]))
            index += 2
            continue
        parts.append(".*" if char == "*" else re.escape(char))
        index += 1
    return re.compile("".join(parts), re.DOTALL)


def _wildcard_matches(value: str, pattern: str) -> bool:
    return _wildcard_regex(pattern).fullmatch(value) is not None


_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": operator.eq,
    "LessThan": operator.lt,
    "GreaterThan": operator.gt,
    "LessThanEquals": operator.le,
    "GreaterThanEquals": operator.ge,
}
_ORDERED_TYPES: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "String": ("a string", _string_key),
    "Numeric": ("a number", _number_key),
    "Timestamp": ("an RFC 3339 timestamp string", timestamp_key),
}

COMPARISONS: dict[str, Comparison] = {
    prefix + suffix: Comparison(operand_type, key, test)
    for prefix, (operand_type, key) in _ORDERED_TYPES.items()
    for suffix, test in _ORDERINGS.items()
}
COMPARISONS["BooleanEquals"] = Comparison("a boolean", _boolean_key, operator.eq)
COMPARISONS["StringMatches"] = Comparison("a string", _plain_string, _wildcard_matches)

# Every comparison but StringMatches also takes its right-hand operand from a path.
PATH_COMPARISONS: dict[str, Comparison] = {
    name + PATH_SUFFIX: comparison for name, comparison in COMPARISONS.items() if name != "StringMatches"
}

TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "IsNull": lambda value: value is None,
    "IsNumeric": lambda value: _number_key(value) is not None,
    "IsString": lambda value: isinstance(value, str),
    "IsBoolean": lambda value: isinstance(value, bool),
    "IsTimestamp": lambda value: timestamp_key(value) is not None,
}

OPERATORS = frozenset({*COMPARISONS, *PATH_COMPARISONS, *TYPE_TESTS, "IsPresent"})


def invalid_path(path: str) -> StatesError:
    return StatesError(
        RUNTIME, f"Invalid path '{path}': The choice state's condition path references an invalid value."
    )


def _select(path: str, resolve: Resolve) -> Any:
    try:
        return resolve(path)
    except PathNotFound as missing:
        raise invalid_path(path) from missing


def _is_present(path: str, resolve: Resolve) -> bool:
    try:
        resolve(path)
    except PathNotFound:
        return False
    return True


def _operator_of(rule: dict[str, Any]) -> str:
    # A definition that passed check_rule never gets here without an operator and a Variable.
    name: str | None = None
    for key in rule:
        if key in OPERATORS:
            name = key
            break
    if name is None or "Variable" not in rule:
        raise StatesError(RUNTIME, f"The Choice rule needs a Variable and an operator: {json.dumps(rule)}")
    return name


def _compare(rule: dict[str, Any], resolve: Resolve) -> bool:
    name = _operator_of(rule)
    operand = rule[name]
    variable = rule["Variable"]
    if name == "IsPresent":
        return isinstance(operand, bool) and _is_present(variable, resolve) is operand
    value = _select(variable, resolve)
    if name in TYPE_TESTS:
        return isinstance(operand, bool) and TYPE_TESTS[name](value) is operand
    if name in PATH_COMPARISONS:
        comparison = PATH_COMPARISONS[name]
        operand = _select(operand, resolve)
    else:
        comparison = COMPARISONS[name]
    left, right = comparison.key(value), comparison.key(operand)
    return left is not None and right is not None and comparison.test(left, right)


def matches(rule: dict[str, Any], resolve: Resolve) -> bool:
    """Whether a JSONPath-mode Choice rule holds.

    Args:
        rule: A Choice rule: a comparison, or ``And``/``Or``/``Not`` of rules.
        resolve: Returns the value a path selects, or raises ``PathNotFound``.

    Returns:
        True when the rule holds. ``And`` and ``Or`` stop at the first rule that settles them.

    Raises:
        StatesError: ``States.Runtime`` when a ``Variable`` (other than for ``IsPresent``)
            or a ``...Path`` operand selects nothing.
    """
    if "And" in rule:
        return all(matches(inner, resolve) for inner in rule["And"])
    if "Or" in rule:
        return any(matches(inner, resolve) for inner in rule["Or"])
    if "Not" in rule:
        return not matches(rule["Not"], resolve)
    return _compare(rule, resolve)


def default_or_fail(state: dict[str, Any]) -> str:
    if "Default" in state:
        return state["Default"]
    raise StatesError(NO_CHOICE_MATCHED, NO_NEXT_STATE_CAUSE)


def choose(state: dict[str, Any], resolve: Resolve) -> str:
    """The name of the next state for a JSONPath-mode Choice state.

    Args:
        state: The Choice state's definition.
        resolve: Returns the value a path selects (``$.x``, ``$$.Execution.Input``,
            ``$varName``), or raises ``PathNotFound``.

    Returns:
        The ``Next`` of the first rule that matches, else the state's ``Default``.

    Raises:
        StatesError: ``States.NoChoiceMatched`` when no rule matches and there is no
            ``Default``; ``States.Runtime`` when a rule's path selects nothing.
    """
    for rule in state["Choices"]:
        if matches(rule, resolve):
            return rule["Next"]
    return default_or_fail(state)


def _expression_text(condition: str) -> str:
    return condition.strip().removeprefix("{%").removesuffix("%}").strip()


def _condition_holds(condition: Any, evaluate: Callable[[Any], Any]) -> bool:
    if isinstance(condition, bool):
        return condition
    result = evaluate(condition)
    if isinstance(result, bool):
        return result
    expression = _expression_text(str(condition))
    prefix = f"The JSONata expression '{expression}' specified for the field 'Condition'"
    if result is None:
        # The evaluator cannot tell JSON null from undefined; a missing field is the usual case.
        raise StatesError(QUERY_EVALUATION_ERROR, f"{prefix} returned nothing (undefined).")
    raise StatesError(
        QUERY_EVALUATION_ERROR,
        f"{prefix} returned an unexpected result type. Expected 'boolean', but was "
        f"'{json_type(result)}' for value: {json.dumps(result, separators=(',', ':'))}",
    )


def choose_by_condition(state: dict[str, Any], condition: Callable[[Any], Any]) -> str:
    """The name of the next state for a JSONata-mode Choice state.

    Args:
        state: The Choice state's definition; each rule has a ``Condition`` that is a
            ``{% ... %}`` expression or a literal boolean.
        condition: Evaluates a rule's ``Condition`` and returns its value.

    Returns:
        The ``Next`` of the first rule whose condition is true, else the state's ``Default``.

    Raises:
        StatesError: ``States.QueryEvaluationError`` when a condition's value is not a
            boolean; ``States.NoChoiceMatched`` when no rule matches and there is no ``Default``.
    """
    for rule in state["Choices"]:
        if _condition_holds(rule.get("Condition"), condition):
            return rule["Next"]
    return default_or_fail(state)


def _pointer(where: str, *keys: str | int) -> str:
    escaped = (str(key).replace("~", "~0").replace("/", "~1") for key in keys)
    return "/".join([where, *escaped])


def _is_path(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("$")


def check_rule(rule: Any, where: str) -> list[Problem]:
    """Every problem with one top-level Choice rule, found without running it.

    Args:
        rule: One element of a Choice state's ``Choices`` (JSONPath or JSONata mode).
        where: The JSON pointer of the rule, such as ``/States/Check/Choices/0``.

    Returns:
        The problems found, each located by a JSON pointer below ``where``; empty when the
        rule is valid.
    """
    if not isinstance(rule, dict):
        return [Problem(where, "a Choice rule must be a JSON object")]
    problems = _check_next(rule, where)
    if "Condition" in rule:
        return problems + _check_condition_rule(rule, where)
    return problems + _check_expression(rule, where, nested=False)


def _check_next(rule: dict[str, Any], where: str) -> list[Problem]:
    if "Next" not in rule:
        return [Problem(where, "a Choice rule must have a Next naming the state to go to when it matches")]
    if not isinstance(rule["Next"], str) or not rule["Next"]:
        return [Problem(_pointer(where, "Next"), "Next must be the name of a state (a non-empty string)")]
    return []


_TOP_LEVEL_FIELDS = frozenset({"Next", "Comment", "Assign"})
_JSONATA_FIELDS = frozenset({"Condition", "Next", "Comment", "Assign", "Output"})


def _check_condition_rule(rule: dict[str, Any], where: str) -> list[Problem]:
    problems = [
        Problem(
            _pointer(where, name), f"'{name}' is not allowed in a JSONata Choice rule, which has a Condition"
        )
        for name in rule
        if name not in _JSONATA_FIELDS
    ]
    condition = rule["Condition"]
    is_expression = isinstance(condition, str) and condition.startswith("{%") and condition.endswith("%}")
    if not (isinstance(condition, bool) or is_expression):
        problems.append(
            Problem(
                _pointer(where, "Condition"),
                "Condition must be a JSONata expression '{% ... %}' or a boolean",
            )
        )
    return problems


def _check_expression(rule: dict[str, Any], where: str, nested: bool) -> list[Problem]:
    problems = _check_fields(rule, where, nested)
    combinators = [name for name in COMBINATORS if name in rule]
    comparisons = [name for name in rule if name in OPERATORS]
    found = combinators + comparisons
    if not found:
        names = "a comparison operator such as StringEquals or IsPresent, or And, Or or Not"
        return [*problems, Problem(where, f"a Choice rule needs {names}")]
    if len(found) > 1:
        return [
            *problems,
            Problem(where, f"a Choice rule takes exactly one operator, found {', '.join(found)}"),
        ]
    if combinators:
        return problems + _check_combinator(rule, combinators[0], where)
    return problems + _check_comparison(rule, comparisons[0], where)


def _check_fields(rule: dict[str, Any], where: str, nested: bool) -> list[Problem]:
    problems: list[Problem] = []
    for name in rule:
        if name in OPERATORS or name in COMBINATORS or name in ("Variable", "Comment"):
            continue
        if nested and name in _TOP_LEVEL_FIELDS:
            message = f"a rule nested in And, Or or Not must not have {name}"
        elif not nested and name in _TOP_LEVEL_FIELDS:
            continue
        else:
            message = f"unknown field '{name}' in a Choice rule (not a comparison operator ASL knows)"
        problems.append(Problem(_pointer(where, name), message))
    return problems


def _check_combinator(rule: dict[str, Any], name: str, where: str) -> list[Problem]:
    problems = []
    if "Variable" in rule:
        problems.append(Problem(_pointer(where, "Variable"), f"Variable is not allowed beside {name}"))
    operand = rule[name]
    if name == "Not":
        if not isinstance(operand, dict):
            return [*problems, Problem(_pointer(where, "Not"), "Not must be a Choice rule (a JSON object)")]
        return problems + _check_nested(operand, _pointer(where, "Not"))
    if not isinstance(operand, list) or not operand:
        return [*problems, Problem(_pointer(where, name), f"{name} must be a non-empty list of Choice rules")]
    for index, inner in enumerate(operand):
        problems += _check_nested(inner, _pointer(where, name, index))
    return problems


def _check_nested(rule: Any, where: str) -> list[Problem]:
    if not isinstance(rule, dict):
        return [Problem(where, "a Choice rule must be a JSON object")]
    return _check_expression(rule, where, nested=True)


def _check_comparison(rule: dict[str, Any], name: str, where: str) -> list[Problem]:
    problems = []
    if "Variable" not in rule:
        problems.append(
            Problem(where, f"a {name} comparison needs a Variable, the path of the value to test")
        )
    elif not _is_path(rule["Variable"]):
        problems.append(Problem(_pointer(where, "Variable"), "Variable must be a path starting with '$'"))
    expected = _expected_operand(name)
    if not expected[1](rule[name]):
        problems.append(Problem(_pointer(where, name), f"{name} must be {expected[0]}"))
    return problems


def _expected_operand(name: str) -> tuple[str, Callable[[Any], bool]]:
    if name in PATH_COMPARISONS:
        return "a path starting with '$'", _is_path
    if name in COMPARISONS:
        comparison = COMPARISONS[name]
        return comparison.operand_type, lambda operand: comparison.key(operand) is not None
    return "a boolean (true or false)", lambda operand: isinstance(operand, bool)
