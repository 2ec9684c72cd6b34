"""Text renderings of JSON values as Step Functions writes them.

Step Functions runs on the JVM: ``States.JsonToString`` writes compact JSON the way Jackson
does, and ``States.Format`` writes each non-string argument the way Java's ``toString``
writes a map, a list or a number (``{Arg1=1, Arg2=[]}``). Floating-point numbers follow
``Double.toString`` in both (``1.0E20``, not ``1e+20``).
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

# Java writes a double in plain notation only inside this range, scientific outside it.
_PLAIN_LOW = 1e-3
_PLAIN_HIGH = 1e7

_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def java_double(number: float) -> str:
    """Render a float as ``Double.toString`` does: shortest digits, ``E`` notation when far from 1.

    Args:
        number: a finite float.

    Returns:
        ``1.1``, ``2.0``, ``1.0E20``, ``1.5E-5`` and so on.
    """
    if number == 0:
        return "-0.0" if math.copysign(1.0, number) < 0 else "0.0"
    if _PLAIN_LOW <= abs(number) < _PLAIN_HIGH:
        # Python's repr is also the shortest round-tripping form and stays plain in this range.
        return repr(number)
    sign, digits, exponent = Decimal(repr(number)).as_tuple()
    significant = "".join(str(d) for d in digits).rstrip("0") or "0"
    power = int(exponent) + len(digits) - 1
    fraction = significant[1:] or "0"
    return f"{'-' if sign else ''}{significant[0]}.{fraction}E{power}"


def json_string(text: str) -> str:
    """Quote a string as Jackson does: short escapes where JSON has them, ``\\u00XX`` otherwise."""
    out = ['"']
    for char in text:
        if char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif ord(char) < 0x20:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def json_text(value: Any) -> str:
    """Serialize a JSON value compactly (no spaces), keeping non-ASCII text as it is."""
    if isinstance(value, str):
        return json_string(value)
    if isinstance(value, dict):
        members = (f"{json_string(str(key))}:{json_text(item)}" for key, item in value.items())
        return "{" + ",".join(members) + "}"
    if isinstance(value, list):
        return "[" + ",".join(json_text(item) for item in value) + "]"
    return _scalar_text(value)


def format_text(value: Any) -> str:
    """Render one ``States.Format`` argument: strings as they are, containers as Java prints them."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}={format_text(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(format_text(item) for item in value) + "]"
    return _scalar_text(value)


def _scalar_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return java_double(value)
    return str(value)
