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
    state does, so a cheap upper bound decides first (``payload_bound``); only a value whose
    bound is over the limit is measured more closely: by Python's ``repr``, none of whose
    characters becomes more than four bytes (a printable non-ASCII character; ``\x01`` in
    four becomes ``\u0001`` in six), then by encoding it.
    """
    value_type = type(value)
    if value_type is dict:
        # A flat object of strings, booleans and nulls, the usual record, bounded here without
        # a call: ``payload_bound``'s walk, written out for its commonest case.
        bound = 2
        for key, item in value.items():
            item_type = type(item)
            if item_type is str:
                bound += len(item)
            elif item_type is not bool and item is not None:
                bound = payload_bound(value)  # nested: the general walk
                break
            bound += len(key) + 8
        if bound <= BOUND_LIMIT:
            return False
    elif value_type is list:
        if payload_bound(value) <= BOUND_LIMIT:
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
    return payload_bytes(value) > PAYLOAD_LIMIT_BYTES


def payload_bytes(value: Any) -> int:
    """The size of ``value`` as compact UTF-8 JSON: what AWS holds to its payload limit."""
    return len(_COMPACT.encode(value).encode())


# ``payload_bound`` counts characters, none of which becomes more than six bytes of compact
# UTF-8 JSON (``\x01`` becomes ``\u0001``): a value whose bound is at most this surely fits.
BOUND_LIMIT = PAYLOAD_LIMIT_BYTES // 6
# The bound of a value that has no cheap one: more than any sum of bounds that could fit.
NO_BOUND = 1 << 60
# How deep ``payload_bound`` looks into nested containers before it gives up.
_BOUND_DEPTH = 8


def payload_bound(value: Any, depth: int = _BOUND_DEPTH) -> int:
    """A cheap upper bound on the size of ``value`` as JSON, in characters of at most six bytes each.

    ``NO_BOUND`` when there is no cheap bound: a value nested deeper than a few levels, an
    int too long to bound by its range, or something that is not plain JSON. Bounds add up:
    a value made of others is bounded by the sum of theirs and room for what joins them.
    Walking a small record costs less than encoding it, which is what lets every state's
    input and output be checked.
    """
    value_type = type(value)
    if value_type is dict:
        # Per entry: quotes, colon and comma fit in the 8, and so does a scalar's text (false).
        bound = 2
        for key, item in value.items():
            item_type = type(item)
            if item_type is str:
                bound += len(key) + len(item) + 8
            elif item_type is bool or item is None:
                bound += len(key) + 8
            elif depth and type(key) is str:
                inner = payload_bound(item, depth - 1)
                if inner >= NO_BOUND:
                    return NO_BOUND
                bound += len(key) + inner + 8
            else:
                return NO_BOUND
        return bound
    if value_type is str:
        return len(value) + 2
    if value_type is list:
        bound = 2
        for item in value:
            if type(item) is str:
                bound += len(item) + 3
                continue
            inner = payload_bound(item, depth - 1) if depth else NO_BOUND
            if inner >= NO_BOUND:
                return NO_BOUND
            bound += inner + 1
        return bound
    if value is None or value_type is bool:
        return 5
    if value_type is int:
        return 20 if -(10**18) < value < 10**18 else NO_BOUND
    if value_type is float:
        return 24  # repr of any float, or Infinity / NaN
    return NO_BOUND


def numeric(value: Any, integral: bool) -> float | None:
    """A path's value as a number; AWS also takes numeric text such as "1" here."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            return int(value) if integral else float(value)
        except ValueError:
            return None
    if integral:
        return value if isinstance(value, int) else None
    return value if isinstance(value, (int, float)) else None
