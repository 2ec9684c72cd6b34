"""Reading what Redis holds: JSON and text that anyone with write access may have put there.

``json.loads`` raises RecursionError, not ValueError, on input nested deeper than the
interpreter's recursion limit; every reader of stored JSON would have to remember that.
:func:`loads` turns it into the ValueError they already handle.
"""

from __future__ import annotations

import json
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
