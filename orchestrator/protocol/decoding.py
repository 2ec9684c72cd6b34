"""Reading what Redis holds: JSON and text that anyone with write access may have put there.

``json.loads`` raises RecursionError, not ValueError, on input nested deeper than the
interpreter's recursion limit; every reader of stored JSON would have to remember that.
:func:`loads` turns it into the ValueError they already handle. :func:`strict_loads`, for what
enters an execution from outside (a record, an execution's input, a callback's output, an
event), also refuses what Python's ``json`` reads but JSON has not: NaN, Infinity, and numbers
too large for a float (``1e400``), which Python would read as infinite and write back as
``Infinity``, text no other JSON reader takes.
"""

from __future__ import annotations

import json
import math
from typing import Any


def loads(raw: str | bytes | bytearray) -> Any:
    """``json.loads(raw)``, raising ValueError (never RecursionError) for input it cannot take.

    Raises:
        ValueError: when ``raw`` is not JSON, or nested too deeply to decode.
    """
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("JSON nested too deeply to decode") from None


def lossless_text(value: bytes | str) -> str:
    """``value`` as text; bytes that are not UTF-8 are kept as backslash escapes, never an error."""
    return value.decode("utf-8", errors="backslashreplace") if isinstance(value, bytes) else value


def strict_loads(raw: str | bytes | bytearray) -> Any:
    """:func:`loads`, refusing NaN, Infinity, -Infinity and numbers beyond a float's range.

    Raises:
        ValueError: when ``raw`` is not JSON (RFC 8259), or nested too deeply to decode.
    """
    try:
        return json.loads(raw, parse_constant=_not_a_json_value, parse_float=_finite)
    except RecursionError:
        raise ValueError("JSON nested too deeply to decode") from None


def _not_a_json_value(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


def _finite(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"the number {text[:40]} is too large to hold")
    return number
