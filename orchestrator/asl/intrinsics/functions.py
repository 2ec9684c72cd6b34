"""What each ``States.*`` intrinsic computes from its evaluated arguments.

Every function takes the argument values in order and returns a JSON value, or raises
``StatesError(States.IntrinsicFailure, cause)`` when the values are not what it accepts.
Integers and floats stay apart (``1`` is not ``1.0``), and ``true`` is never a number.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import random
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from orchestrator.asl.errors import INTRINSIC_FAILURE, StatesError
from orchestrator.asl.intrinsics.rendering import format_text, json_text
from orchestrator.asl.intrinsics.syntax import PLACEHOLDER
from orchestrator.asl.json_values import HASH_ALGORITHMS, json_type

# Limits the Step Functions documentation states for these intrinsics.
MAX_RANGE_ITEMS = 1000
MAX_ENCODING_INPUT = 10_000
MAX_HASH_INPUT = 10_000

_unseeded = random.Random()


def fail(function: str, problem: str) -> StatesError:
    """The error an intrinsic raises when its arguments are unusable."""
    return StatesError(INTRINSIC_FAILURE, f"Invalid arguments in {function}: {problem}")


def identity(value: Any) -> Any:
    """A hashable key equal for two JSON values exactly when they are the same JSON value."""
    if isinstance(value, dict):
        return ("object", frozenset((key, identity(item)) for key, item in value.items()))
    if isinstance(value, list):
        return ("array", tuple(identity(item) for item in value))
    return (json_type(value), type(value).__name__, value)


def _string(function: str, value: Any, role: str) -> str:
    if not isinstance(value, str):
        raise fail(function, f"the {role} must be a string, not {json_type(value)}")
    return value


def _array(function: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise fail(function, f"the first argument must be an array, not {json_type(value)}")
    return value


def _object(function: str, value: Any, role: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(function, f"the {role} must be an object, not {json_type(value)}")
    return value


def _number(function: str, value: Any, role: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(function, f"the {role} must be a number, not {json_type(value)}")
    return value


def _integer(function: str, value: Any, role: str) -> int:
    number = _number(function, value, role)
    if isinstance(number, float) and not number.is_integer():
        raise fail(function, f"the {role} must be an integer, not {number}")
    return int(number)


def _rounded(function: str, value: Any, role: str) -> int:
    # The service rounds halves up (Java's Math.round): 1.5 -> 2, -1.5 -> -1, -2.5 -> -2.
    number = _number(function, value, role)
    if not math.isfinite(number):  # 1e400 reads as infinity, which no integer is nearest to
        raise fail(function, f"the {role} must be a finite number, not {number}")
    return math.floor(number + 0.5)


def format_string(pieces: Sequence[str], values: Sequence[Any]) -> str:
    """``States.Format``: the template's pieces joined by the rendered values, one per ``{}``."""
    if len(pieces) - 1 != len(values):
        raise fail(
            "States.Format",
            f"the format string has {len(pieces) - 1} placeholder(s) but {len(values)} value(s) follow it",
        )
    out = [pieces[0]]
    for value, piece in zip(values, pieces[1:], strict=True):
        out.append(format_text(value))
        out.append(piece)
    return "".join(out)


def template_pieces(template: Any) -> list[str]:
    """Cut a format string read from a path at each ``{}`` (no escapes apply to data)."""
    return _string("States.Format", template, "format string").split(PLACEHOLDER)


def string_to_json(text: Any) -> Any:
    """``States.StringToJson``: parse JSON text; blank text is ``null``."""
    source = _string("States.StringToJson", text, "argument")
    if not source.strip():
        return None
    try:
        return json.loads(source, parse_constant=_reject_constant)
    except ValueError as error:
        raise fail("States.StringToJson", f"the string is not valid JSON ({error})") from None
    except RecursionError:
        raise fail("States.StringToJson", "the JSON in the string is nested too deeply to decode") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def json_to_string(value: Any) -> str:
    """``States.JsonToString``: compact JSON text of any value."""
    return json_text(value)


def array(*values: Any) -> list[Any]:
    """``States.Array``: the arguments as an array."""
    return list(values)


def array_partition(items: Any, size: Any) -> list[list[Any]]:
    """``States.ArrayPartition``: consecutive chunks of ``size`` items, the last maybe shorter.

    A chunk size that is not an integer is rounded to the nearest one, as the Developer Guide
    says (intrinsic-functions.html, States.ArrayPartition, "Input validation").
    """
    sequence = _array("States.ArrayPartition", items)
    chunk = _rounded("States.ArrayPartition", size, "chunk size")
    if chunk <= 0:
        raise fail("States.ArrayPartition", f"the chunk size must be greater than 0, not {chunk}")
    return [sequence[start : start + chunk] for start in range(0, len(sequence), chunk)]


def array_contains(items: Any, wanted: Any) -> bool:
    """``States.ArrayContains``: whether an item equals ``wanted`` as a JSON value."""
    key = identity(wanted)
    return any(identity(item) == key for item in _array("States.ArrayContains", items))


def array_range(first: Any, last: Any, step: Any) -> list[int]:
    """``States.ArrayRange``: integers from ``first`` towards ``last`` (inclusive) by ``step``.

    Arguments that are not integers are rounded to the nearest one, as the Developer Guide
    says (intrinsic-functions.html, States.ArrayRange, "Input validation").
    """
    start = _rounded("States.ArrayRange", first, "first value")
    end = _rounded("States.ArrayRange", last, "last value")
    increment = _rounded("States.ArrayRange", step, "step")
    if increment == 0:
        raise fail("States.ArrayRange", "the step must not be 0")
    stop = end + (1 if increment > 0 else -1)
    # len() of a range refuses one longer than sys.maxsize (0 to 1e20): counted exactly instead.
    count = max(0, -((start - stop) // increment))
    if count > MAX_RANGE_ITEMS:
        raise fail("States.ArrayRange", f"the range has {count} items, more than {MAX_RANGE_ITEMS}")
    return list(range(start, stop, increment))


def array_get_item(items: Any, index: Any) -> Any:
    """``States.ArrayGetItem``: the item at a zero-based index."""
    sequence = _array("States.ArrayGetItem", items)
    position = _integer("States.ArrayGetItem", index, "index")
    if not 0 <= position < len(sequence):
        raise fail(
            "States.ArrayGetItem",
            f"the index {position} is out of bounds for an array of length {len(sequence)}",
        )
    return sequence[position]


def array_length(items: Any) -> int:
    """``States.ArrayLength``: the number of items."""
    return len(_array("States.ArrayLength", items))


def array_unique(items: Any) -> list[Any]:
    """``States.ArrayUnique``: the items without repeats, first occurrences kept in order."""
    seen: set[Any] = set()
    unique: list[Any] = []
    for item in _array("States.ArrayUnique", items):
        key = identity(item)
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


def base64_encode(text: Any) -> str:
    """``States.Base64Encode``: the Base64 of the string's UTF-8 bytes."""
    source = _string("States.Base64Encode", text, "argument")
    if len(source) > MAX_ENCODING_INPUT:
        raise fail("States.Base64Encode", f"the string is longer than {MAX_ENCODING_INPUT} characters")
    return base64.b64encode(source.encode("utf-8")).decode("ascii")


def base64_decode(text: Any) -> str:
    """``States.Base64Decode``: the UTF-8 text whose Base64 is the argument."""
    source = _string("States.Base64Decode", text, "argument")
    if len(source) > MAX_ENCODING_INPUT:
        raise fail("States.Base64Decode", f"the string is longer than {MAX_ENCODING_INPUT} characters")
    try:
        return base64.b64decode(source, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise fail("States.Base64Decode", "the string is not Base64-encoded UTF-8 text") from None


def hash_value(data: Any, algorithm: Any) -> str:
    """``States.Hash``: the lowercase hex digest of the string's UTF-8 bytes."""
    source = _string("States.Hash", data, "data")
    name = _string("States.Hash", algorithm, "algorithm")
    if name not in HASH_ALGORITHMS:
        supported = ", ".join(HASH_ALGORITHMS)
        raise fail("States.Hash", f"the algorithm {name!r} is not one of {supported}")
    if len(source) > MAX_HASH_INPUT:
        raise fail("States.Hash", f"the data is longer than {MAX_HASH_INPUT} characters")
    return hashlib.new(HASH_ALGORITHMS[name], source.encode("utf-8")).hexdigest()


def json_merge(left: Any, right: Any, deep: Any) -> dict[str, Any]:
    """``States.JsonMerge``: a shallow merge in which the second object's keys win."""
    first = _object("States.JsonMerge", left, "first argument")
    second = _object("States.JsonMerge", right, "second argument")
    if not isinstance(deep, bool):
        raise fail("States.JsonMerge", f"the deep-merge flag must be a boolean, not {json_type(deep)}")
    if deep:
        raise fail("States.JsonMerge", "deep merging is not supported; the third argument must be false")
    return {**first, **second}


def math_random(start: Any, end: Any, seed: Any = None) -> int:
    """``States.MathRandom``: a random integer from ``start`` (inclusive) to ``end`` (exclusive)."""
    low = _rounded("States.MathRandom", start, "start")
    high = _rounded("States.MathRandom", end, "end")
    if low >= high:
        raise fail("States.MathRandom", f"the start {low} must be less than the end {high}")
    generator = _unseeded if seed is None else random.Random(_rounded("States.MathRandom", seed, "seed"))
    return generator.randrange(low, high)


def math_add(augend: Any, addend: Any) -> int:
    """``States.MathAdd``: the sum of the two numbers, each first rounded to an integer.

    "Intrinsic functions" (Developer Guide, intrinsic-functions.html#asl-intrsc-func-math-operation):
    "You must specify integer values in the range of -2147483648 and 2147483647"; a value
    outside it, once rounded, is an argument the function does not accept.
    """
    return _int32("first value", augend) + _int32("second value", addend)


# The range the Developer Guide gives States.MathAdd's arguments: Java's int.
_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1


def _int32(role: str, value: Any) -> int:
    number = _number("States.MathAdd", value, role)
    # Compared before rounding, so that a value too big to round (1e400 is infinity) or
    # not a number at all (NaN compares false) is refused rather than crashing the round.
    if not _INT32_MIN - 0.5 <= number < _INT32_MAX + 0.5:
        raise fail(
            "States.MathAdd", f"the {role} must be between {_INT32_MIN} and {_INT32_MAX}, not {number}"
        )
    return _rounded("States.MathAdd", number, role)


def string_split(text: Any, delimiters: Any) -> list[str]:
    """``States.StringSplit``: the non-empty parts between any of the delimiter characters."""
    source = _string("States.StringSplit", text, "string")
    separators = set(_string("States.StringSplit", delimiters, "delimiter"))
    parts: list[str] = []
    current: list[str] = []
    for char in source:
        if char in separators:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part]


def new_uuid() -> str:
    """``States.UUID``: a random version 4 UUID."""
    return str(uuid.uuid4())


# name -> (function, least arguments, most arguments or None for any number). The evaluator
# calls format_string itself, because only it knows which braces of a literal were escaped.
FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int | None]] = {
    "States.Format": (format_string, 1, None),
    "States.StringToJson": (string_to_json, 1, 1),
    "States.JsonToString": (json_to_string, 1, 1),
    "States.Array": (array, 0, None),
    "States.ArrayPartition": (array_partition, 2, 2),
    "States.ArrayContains": (array_contains, 2, 2),
    "States.ArrayRange": (array_range, 3, 3),
    "States.ArrayGetItem": (array_get_item, 2, 2),
    "States.ArrayLength": (array_length, 1, 1),
    "States.ArrayUnique": (array_unique, 1, 1),
    "States.Base64Encode": (base64_encode, 1, 1),
    "States.Base64Decode": (base64_decode, 1, 1),
    "States.Hash": (hash_value, 2, 2),
    "States.JsonMerge": (json_merge, 3, 3),
    "States.MathRandom": (math_random, 2, 3),
    "States.MathAdd": (math_add, 2, 2),
    "States.StringSplit": (string_split, 2, 2),
    "States.UUID": (new_uuid, 0, 0),
}

ARITY = {name: (least, most) for name, (_, least, most) in FUNCTIONS.items()}
