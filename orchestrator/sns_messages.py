"""A notification as SNS's Publish checks it: its message, subject and attributes.

Shared by Publish (orchestrator.api.sns) and the ``sns:publish`` task integration
(orchestrator.services), so that a notification a state machine publishes is refused and shaped
as one published through the API.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_MESSAGE_BYTES = 262_144
"""SNS's 256 KiB for a message with its attributes."""
MAX_SUBJECT = 100
MAX_ATTRIBUTES = 10
DATA_TYPE = re.compile(r"(String|Number|Binary|String\.Array)(\.[^\s]{1,249})?")
SUBJECT = re.compile(r"[\x20-\x7e]+")


class PublishRefused(ValueError):
    """What SNS refuses a Publish with (InvalidParameter), naming the member at fault."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def checked_publish(request: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Message, Subject and MessageAttributes of a Publish request or batch entry, once checked.

    With MessageStructure ``json`` the message is the structure's default one, which every
    protocol redstep delivers to reads.

    Raises:
        PublishRefused: InvalidParameter, naming the member (``where`` prefixes it in a batch).
    """
    text = request["Message"]
    if request.get("MessageStructure") is not None:
        text = _default_of_structure(request["MessageStructure"], text, where)
    if not text:
        raise PublishRefused(f"{where}Message: Empty message")
    subject = request.get("Subject")
    if subject is not None and (
        not isinstance(subject, str) or len(subject) > MAX_SUBJECT or not SUBJECT.fullmatch(subject)
    ):
        raise PublishRefused(
            f"{where}Subject: a subject is 1 to {MAX_SUBJECT} printable ASCII characters, without line breaks"
        )
    attributes = request.get("MessageAttributes", {})
    _check_attributes(attributes, where)
    size = len(text.encode()) + sum(
        len(name.encode()) + len(json.dumps(value).encode()) for name, value in attributes.items()
    )
    if size > MAX_MESSAGE_BYTES:
        raise PublishRefused(
            f"{where}Message too long: {size} bytes with its attributes, over SNS's {MAX_MESSAGE_BYTES}"
        )
    return {"Message": text, "Subject": subject, "MessageAttributes": attributes}


def _default_of_structure(structure: str, text: str, where: str) -> str:
    if structure != "json":
        raise PublishRefused(f"{where}MessageStructure: the only structure is 'json', not {structure[:20]!r}")
    try:
        messages = json.loads(text)
    except ValueError:
        messages = None
    if not isinstance(messages, dict) or not isinstance(messages.get("default"), str):
        raise PublishRefused(
            f"{where}Message Structure - No default entry in JSON message body"
            " (with MessageStructure json, Message is a JSON object with a string 'default')"
        )
    # Every protocol redstep delivers to reads the default message.
    return str(messages["default"])


def _check_attributes(attributes: Any, where: str) -> None:
    if not isinstance(attributes, dict):
        raise PublishRefused(
            f"{where}MessageAttributes: an object of attributes by name, each"
            ' {"DataType": ..., "StringValue" or "BinaryValue": ...}'
        )
    if len(attributes) > MAX_ATTRIBUTES:
        raise PublishRefused(
            f"{where}MessageAttributes: at most {MAX_ATTRIBUTES} attributes, not {len(attributes)}"
        )
    for name, attribute in attributes.items():
        data_type = attribute.get("DataType", "") if isinstance(attribute, dict) else ""
        if not isinstance(data_type, str) or not DATA_TYPE.fullmatch(data_type):
            raise PublishRefused(
                f"{where}MessageAttributes: The message attribute '{name}' has an invalid message attribute"
                f" type {str(data_type)[:50]!r}: String, Number, Binary or String.Array"
            )
        wanted = "BinaryValue" if data_type.startswith("Binary") else "StringValue"
        if attribute.get(wanted) is None:
            raise PublishRefused(
                f"{where}MessageAttributes: The message attribute '{name}' with type '{data_type}' must"
                f" contain a non-empty {wanted}"
            )
