"""Facts about plain JSON values that several parts of the language share."""

from __future__ import annotations

from typing import Any

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
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"
