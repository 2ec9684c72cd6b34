"""The MD5 digests SQS answers with, computed as AWS computes them so that SDKs that check agree.

The attributes' digest covers each attribute in name order: the name, the data type and the
value, each as a 4-byte big-endian length and its UTF-8 bytes (a binary value as its bytes),
with a transport byte (1 string, 2 binary) before the value.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Any

STRING_TRANSPORT = 1
BINARY_TRANSPORT = 2


def md5_of_body(body: str) -> str:
    return hashlib.md5(body.encode("utf-8"), usedforsecurity=False).hexdigest()


def md5_of_attributes(attributes: dict[str, Any]) -> str:
    """The digest of message attributes already checked (each has its value for its data type)."""
    digest = hashlib.md5(usedforsecurity=False)
    for name in sorted(attributes):
        value = attributes[name]
        digest.update(_sized(name.encode()))
        digest.update(_sized(value["DataType"].encode()))
        if value["DataType"].startswith("Binary"):
            digest.update(bytes([BINARY_TRANSPORT]))
            digest.update(_sized(base64.b64decode(value["BinaryValue"])))
        else:
            digest.update(bytes([STRING_TRANSPORT]))
            digest.update(_sized(value["StringValue"].encode()))
    return digest.hexdigest()


def _sized(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data
