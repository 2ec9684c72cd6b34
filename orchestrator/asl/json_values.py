"""Facts about plain JSON values that several parts of the language share."""

from __future__ import annotations

import json
from typing import Any

# Type tuples for isinstance: a ``dict | list`` union written in a call is built anew on
# every call, which costs more than the check on the engine's hot paths.
NUMBER_TYPES = (int, float)
CONTAINER_TYPES = (dict, list)

# The hash algorithms States.Hash and $hash accept, by the names AWS gives them.
HASH_ALGORITHMS = {
    "MD5": "md5",
    "SHA-1": "sha1",
    "SHA-256": "sha256",
    "SHA-384": "sha384",
    "SHA-512": "sha512",
}


def json_type(value: Any) -> str:
    """The JSON type name of a plain JSON value, as AWS names it in causes."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, NUMBER_TYPES):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


# AWS's limit on any state's input, output or result, in bytes of UTF-8 JSON.
PAYLOAD_LIMIT_BYTES = 256 * 1024
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def exceeds_payload_limit(value: Any) -> bool:
    r"""Whether ``value`` as JSON is over the 256 KiB that AWS allows for any state's data.

    Encoding every value that passes through a state would cost more than the rest of the
    state does, so a cheap upper bound decides first; only a value whose bound is over the
    limit is encoded to be measured exactly. No character of a string becomes more than six
    bytes of compact UTF-8 JSON (```` becomes ````). An object of strings,
    booleans and nulls, the usual record, is bounded by adding up its lengths; any other
    container by Python's ``repr``, none of whose characters becomes more than four bytes (a
    printable non-ASCII character; ```` in four becomes ```` in six).
    """
    if type(value) is dict:
        # Per entry: quotes, colon, comma and the longest scalar (false) fit in the 8.
        bound = 2
        for key, item in value.items():
            item_type = type(item)
            if item_type is str:
                bound += len(item)
            elif item_type is not bool and item is not None:
                break
            bound += len(key) + 8
        else:
            if bound * 6 <= PAYLOAD_LIMIT_BYTES:
                return False
    elif isinstance(value, str):
        # A string is measured as its UTF-8 text, at most four bytes a character.
        return len(value) * 4 > PAYLOAD_LIMIT_BYTES and len(value.encode()) > PAYLOAD_LIMIT_BYTES
    elif not isinstance(value, CONTAINER_TYPES):
        return False
    try:
        if 4 * len(repr(value)) <= PAYLOAD_LIMIT_BYTES:
            return False
    except (RecursionError, ValueError):
        pass  # nested too deeply, or an int too long for text: the exact measure answers
    return len(_COMPACT.encode(value).encode()) > PAYLOAD_LIMIT_BYTES
