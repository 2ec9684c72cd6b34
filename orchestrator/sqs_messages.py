"""An SQS message as SQS checks it, and the MD5 digests SQS answers with.

Shared by SendMessage (orchestrator.api.sqs) and the ``sqs:sendMessage`` task integration
(orchestrator.services), so that a message a state machine sends is refused, kept and digested
as one sent to the API.

The attributes' digest covers each attribute in name order: the name, the data type and the
value, each as a 4-byte big-endian length and its UTF-8 bytes (a binary value as its bytes),
with a transport byte (1 string, 2 binary) before the value, as AWS computes it, so that SDKs
that check agree.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_MESSAGE_BYTES = 262_144
"""AWS's 256 KiB for a body with its attributes, which is also the largest execution input."""
MAX_ATTRIBUTES = 10
# SendMessage members redstep's queues have no use for: they are standard queues that deliver at once.
UNSUPPORTED = ("DelaySeconds", "MessageSystemAttributes", "MessageDeduplicationId", "MessageGroupId")
ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,256}")
DATA_TYPE = re.compile(r"(String|Number|Binary)(\.[^\s]{1,249})?")
# The characters SQS accepts in a body or a string value (XML 1.0's Char production).
FORBIDDEN_CHARACTER = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

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


class MessageRefused(ValueError):
    """What SQS refuses a message with: its error ``code`` and a message naming the member at fault."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_supported(request: dict[str, Any], where: str = "") -> None:
    """Refuse a SendMessage ``request`` that asks for what redstep's queues cannot do (a delay, FIFO).

    Raises:
        MessageRefused: InvalidParameterValue, naming the member.
    """
    for member in UNSUPPORTED:
        if request.get(member) not in (None, 0, {}):
            raise _invalid(
                f"{where}{member} is not supported by redstep: its queues are standard queues that"
                " deliver at once; send the message without it"
            )


def check_message(body: str, attributes: Any, where: str = "") -> None:
    """Check a message's body and attributes as SendMessage does (``where`` prefixes a batch entry's).

    Raises:
        MessageRefused: what SQS refuses the message with.
    """
    if not isinstance(attributes, dict):
        raise _invalid(
            f"{where}MessageAttributes must be an object of attributes by name, each"
            ' {"DataType": ..., "StringValue" or "BinaryValue": ...}'
        )
    check_characters(body, f"{where}MessageBody")
    size = len(body.encode()) + check_attributes(attributes, f"{where}MessageAttributes")
    if size > MAX_MESSAGE_BYTES:
        raise _invalid(
            f"{where}MessageBody with its attributes is {size} bytes; a message must be at most"
            f" {MAX_MESSAGE_BYTES} bytes (256 KiB). Keep large payloads elsewhere and send a reference"
        )


def check_characters(text: str, where: str) -> None:
    """Refuse ``text`` (a body or a string value) holding a character SQS does not accept.

    Raises:
        MessageRefused: InvalidMessageContents.
    """
    forbidden = FORBIDDEN_CHARACTER.search(text)
    if forbidden:
        raise MessageRefused(
            "InvalidMessageContents",
            f"{where} contains the character U+{ord(forbidden.group()):04X} at offset {forbidden.start()},"
            " which SQS does not accept (allowed: tab, newline, carriage return and Unicode from U+0020,"
            " without surrogates, U+FFFE or U+FFFF)",
        )


def check_attributes(attributes: dict[str, Any], where: str) -> int:
    """Check message attributes as SQS does; their size in bytes (they count toward the 256 KiB).

    Raises:
        MessageRefused: InvalidParameterValue, or InvalidMessageContents for a string value.
    """
    if len(attributes) > MAX_ATTRIBUTES:
        raise _invalid(f"{where} has {len(attributes)} attributes; at most {MAX_ATTRIBUTES} are allowed")
    size = 0
    for name, value in attributes.items():
        here = f"{where}.{name}"
        if not ATTRIBUTE_NAME.fullmatch(name) or ".." in name or name.startswith(".") or name.endswith("."):
            raise _invalid(
                f"{where}: the attribute name {name[:100]!r} must be 1 to 256 letters, digits, hyphens,"
                " underscores or periods, without a leading, trailing or doubled period"
            )
        if name.lower().startswith(("aws.", "amazon.")):
            raise _invalid(f"{where}: the attribute name {name!r} uses a prefix AWS reserves (AWS., Amazon.)")
        data_type = value.get("DataType", "") if isinstance(value, dict) else ""
        if not isinstance(data_type, str) or not DATA_TYPE.fullmatch(data_type):
            raise _invalid(
                f"{here}.DataType {str(data_type)[:100]!r} must be String, Number or Binary, optionally"
                " followed by a custom label (String.json)"
            )
        size += len(name.encode()) + len(data_type.encode()) + _value_size(value, data_type, here)
    return size


def _value_size(value: dict[str, Any], data_type: str, here: str) -> int:
    if data_type.startswith("Binary"):
        raw = value.get("BinaryValue")
        try:
            decoded = base64.b64decode(raw, validate=True) if isinstance(raw, str) else b""
        except (binascii.Error, ValueError):
            decoded = b""
        if not decoded:
            raise _invalid(f"{here}: a Binary attribute needs a non-empty BinaryValue (base64)")
        return len(decoded)
    text = value.get("StringValue")
    if not isinstance(text, str) or not text:
        raise _invalid(f"{here}: a {data_type.split('.')[0]} attribute needs a non-empty StringValue")
    check_characters(text, f"{here}.StringValue")
    if data_type.startswith("Number"):
        try:
            Decimal(text)
        except InvalidOperation:
            raise _invalid(f"{here}.StringValue {text[:100]!r} is not a number") from None
    return len(text.encode())


def _invalid(message: str) -> MessageRefused:
    return MessageRefused("InvalidParameterValue", message)
