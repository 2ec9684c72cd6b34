"""The JSONata functions that Step Functions provides beyond standard JSONata.

``$partition``, ``$range``, ``$hash``, ``$random``, ``$uuid`` and ``$parse`` stand in for the
JSONPath intrinsics (``States.ArrayPartition``, ``States.ArrayRange``, ...). ``$eval`` is
withdrawn, as on AWS, so calling it fails like calling any name that is not a function.
``$now()`` and ``$millis()`` read the state's entry time from ``$states.context`` rather than
a clock, so evaluating the same state twice gives the same answer.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from jsonata import Functions, Jsonata, Utils

from orchestrator.asl.json_values import HASH_ALGORITHMS

# Guards the orchestrator's memory against a typo such as $range(0, 1e12, 1).
MAX_RANGE_ITEMS = 1_000_000


class FunctionError(Exception):
    """A Step Functions JSONata function was called with arguments it cannot work with."""


def partition(array: list[Any], chunk_size: float) -> list[list[Any]]:
    """Split ``array`` into chunks of ``chunk_size`` items; the last chunk may be shorter."""
    size = _whole_number(chunk_size, "$partition", "chunk size")
    if size < 1:
        raise FunctionError(f"The chunk size of $partition must be a positive integer, but was {size}")
    return [list(array[start : start + size]) for start in range(0, len(array), size)]


def number_range(first: float, last: float, step: float = 1) -> list[int]:
    """The integers from ``first`` to ``last`` inclusive, ``step`` apart (negative counts down).

    The result is a JSONata sequence, so a range of one number is that number, as on AWS.
    """
    start = _whole_number(first, "$range", "start")
    end = _whole_number(last, "$range", "end")
    stride = _whole_number(step, "$range", "step")
    if stride == 0:
        raise FunctionError("The step of $range must not be zero")
    stop = end + (1 if stride > 0 else -1)
    numbers = range(start, stop, stride)
    if len(numbers) > MAX_RANGE_ITEMS:
        raise FunctionError(
            f"$range would produce {len(numbers)} items; the most allowed is {MAX_RANGE_ITEMS}"
        )
    return Utils.create_sequence_from_iter(numbers)


def hash_of(value: Any, algorithm: str) -> str:
    """The hexadecimal digest of ``value`` (JSON text when it is not a string)."""
    name = HASH_ALGORITHMS.get(algorithm)
    if name is None:
        supported = ", ".join(HASH_ALGORITHMS)
        raise FunctionError(f"The hash algorithm '{algorithm}' is not supported; use one of {supported}")
    text = value if isinstance(value, str) else json.dumps(_plain(value), separators=(",", ":"))
    return hashlib.new(name, text.encode("utf-8")).hexdigest()


def random_number(seed: float | None = None) -> float:
    """A number in [0, 1); the same seed always gives the same number."""
    if seed is None:
        return random.random()
    return random.Random(seed).random()


def new_uuid() -> str:
    """A random version 4 UUID."""
    return str(uuid.uuid4())


def parse(text: str) -> Any:
    """The JSON value that ``text`` spells."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError as problem:
        raise FunctionError(f"$parse could not read its argument as JSON: {problem}") from None
    except RecursionError:
        raise FunctionError("$parse could not read its argument as JSON: it nests too deeply") from None
    return Utils.NULL_VALUE if value is None else value


def bindings(states: dict[str, Any]) -> dict[str, Any]:
    """The function bindings for one evaluation, keyed by name without ``$``.

    Args:
        states: The value of ``$states``; its context's ``State.EnteredTime`` fixes ``$now()``.

    Returns:
        Names to bind next to the workflow variables.
    """
    functions = dict(_STEP_FUNCTIONS)
    entered_millis = _entered_millis(states)
    if entered_millis is not None:
        functions["now"] = _function(
            lambda picture=None, timezone=None: Functions.datetime_from_millis(
                entered_millis, picture, timezone
            ),
            "<s?s?:s>",
        )
        functions["millis"] = _function(lambda: entered_millis, "<:n>")
    return functions


def _function(implementation: Callable[..., Any], signature: str) -> Jsonata.JFunction:
    return Jsonata.JFunction(Jsonata.JLambda(implementation), signature)


def _whole_number(value: float, function: str, role: str) -> int:
    if isinstance(value, bool) or not float(value).is_integer():
        raise FunctionError(f"The {role} of {function} must be an integer, but was {value}")
    return int(value)


def _reject_constant(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _plain(value: Any) -> Any:
    if value is Utils.NULL_VALUE:
        return None
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _entered_millis(states: dict[str, Any]) -> int | None:
    context = states.get("context") if isinstance(states, dict) else None
    entered = _dig(context, "State", "EnteredTime") or _dig(context, "Execution", "StartTime")
    if not isinstance(entered, str):
        return None
    try:
        moment = datetime.fromisoformat(entered)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return int(moment.timestamp() * 1000)


def _dig(document: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(document, dict):
            return None
        document = document.get(key)
    return document


_STEP_FUNCTIONS: dict[str, Any] = {
    "partition": _function(partition, "<an:a>"),
    "range": _function(number_range, "<nnn?:a<n>>"),
    "hash": _function(hash_of, "<js:s>"),
    "random": _function(random_number, "<n?:n>"),
    "uuid": _function(new_uuid, "<:s>"),
    "parse": _function(parse, "<s:j>"),
    # Withdrawn on AWS in favour of $parse; a None binding hides the library's $eval.
    "eval": None,
}
