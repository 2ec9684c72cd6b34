"""SendMessage and SendMessageBatch: messages checked as SQS checks them, then queued.

A message sent to the pipeline's queue starts its execution through the event-source mapping,
as a record from ``redstep produce`` does: its MessageId is the execution's name.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from orchestrator.api.errors import ApiError
from orchestrator.api.sqs.context import Sqs, invalid_parameter, sqs_error
from orchestrator.api.sqs.md5 import md5_of_attributes, md5_of_body
from orchestrator.runtime.queues import OutgoingMessage

MAX_MESSAGE_BYTES = 262_144
"""AWS's 256 KiB for a body with its attributes, which is also the largest execution input."""
MAX_BATCH_ENTRIES = 10
MAX_ATTRIBUTES = 10
BATCH_ENTRY_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,256}")
DATA_TYPE = re.compile(r"(String|Number|Binary)(\.[^\s]{1,249})?")
# The characters SQS accepts in a body or a string value (XML 1.0's Char production).
FORBIDDEN_CHARACTER = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
UNSUPPORTED = ("DelaySeconds", "MessageSystemAttributes", "MessageDeduplicationId", "MessageGroupId")


@dataclass(frozen=True)
class Accepted:
    """A message that passed every check, and what SendMessage answers for it."""

    message: OutgoingMessage

    def answer(self) -> dict[str, Any]:
        answer = {"MessageId": self.message.message_id, "MD5OfMessageBody": md5_of_body(self.message.body)}
        if self.message.attributes:
            answer["MD5OfMessageAttributes"] = md5_of_attributes(self.message.attributes)
        return answer


def send_message(sqs: Sqs, request: dict[str, Any], host: str) -> dict[str, Any]:
    name = sqs.queue_of(request["QueueUrl"])
    accepted = accept(request, "")
    sqs.queues.send(name, [accepted.message])
    return accepted.answer()


def send_message_batch(sqs: Sqs, request: dict[str, Any], host: str) -> dict[str, Any]:
    name = sqs.queue_of(request["QueueUrl"])
    entries = request["Entries"]
    check_batch(entries)
    accepted: list[tuple[str, Accepted]] = []
    failed: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        try:
            accepted.append((entry["Id"], accept(entry, f"Entries.{index + 1}.")))
        except ApiError as error:
            failed.append(
                {"Id": entry["Id"], "SenderFault": True, "Code": error.code, "Message": error.message}
            )
    if accepted:
        sqs.queues.send(name, [item.message for _, item in accepted])
    return {
        "Successful": [{"Id": entry_id, **item.answer()} for entry_id, item in accepted],
        "Failed": failed,
    }


def accept(request: dict[str, Any], where: str) -> Accepted:
    """The message ``request`` (a SendMessage request or a batch entry) asks for.

    Raises:
        ApiError: what SQS refuses it with, naming the member (``where`` prefixes it in a batch).
    """
    for member in UNSUPPORTED:
        if request.get(member) not in (None, 0, {}):
            raise invalid_parameter(
                f"{where}{member} is not supported by redstep: its queues are standard queues that"
                " deliver at once; send the message without it"
            )
    body = request["MessageBody"]
    if not body:
        raise sqs_error("MissingParameter", f"{where}MessageBody must not be empty")
    _check_characters(body, f"{where}MessageBody")
    attributes = request.get("MessageAttributes") or {}
    size = len(body.encode()) + _check_attributes(attributes, f"{where}MessageAttributes")
    if size > MAX_MESSAGE_BYTES:
        raise invalid_parameter(
            f"{where}MessageBody with its attributes is {size} bytes; a message must be at most"
            f" {MAX_MESSAGE_BYTES} bytes (256 KiB). Keep large payloads elsewhere and send a reference"
        )
    return Accepted(OutgoingMessage(str(uuid.uuid4()), body, attributes))


def check_batch(entries: list[dict[str, Any]]) -> None:
    """Refuse a batch as SQS does: empty, over ten entries, or with Ids that are malformed or repeated."""
    if not entries:
        raise sqs_error(
            "EmptyBatchRequest",
            "The batch request doesn't contain any entries: send 1 to 10",
            "AWS.SimpleQueueService.EmptyBatchRequest",
        )
    if len(entries) > MAX_BATCH_ENTRIES:
        raise sqs_error(
            "TooManyEntriesInBatchRequest",
            f"The batch request contains {len(entries)} entries; at most {MAX_BATCH_ENTRIES} are allowed",
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
        )
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        entry_id = entry["Id"]
        if not BATCH_ENTRY_ID.fullmatch(entry_id):
            raise sqs_error(
                "InvalidBatchEntryId",
                f"Entries.{index + 1}.Id {entry_id[:100]!r} is not 1 to 80 ASCII letters, digits,"
                " hyphens or underscores",
                "AWS.SimpleQueueService.InvalidBatchEntryId",
            )
        if entry_id in seen:
            raise sqs_error(
                "BatchEntryIdsNotDistinct",
                f"Entries.{index + 1}.Id {entry_id!r} is used by an earlier entry;"
                " give each entry its own Id",
                "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
            )
        seen.add(entry_id)


def _check_characters(text: str, where: str) -> None:
    forbidden = FORBIDDEN_CHARACTER.search(text)
    if forbidden:
        raise sqs_error(
            "InvalidMessageContents",
            f"{where} contains the character U+{ord(forbidden.group()):04X} at offset {forbidden.start()},"
            " which SQS does not accept (allowed: tab, newline, carriage return and Unicode from U+0020,"
            " without surrogates, U+FFFE or U+FFFF)",
        )


def _check_attributes(attributes: dict[str, Any], where: str) -> int:
    """Check message attributes as SQS does; their size in bytes (they count toward the 256 KiB)."""
    if len(attributes) > MAX_ATTRIBUTES:
        raise invalid_parameter(
            f"{where} has {len(attributes)} attributes; at most {MAX_ATTRIBUTES} are allowed"
        )
    size = 0
    for name, value in attributes.items():
        here = f"{where}.{name}"
        if not ATTRIBUTE_NAME.fullmatch(name) or ".." in name or name.startswith(".") or name.endswith("."):
            raise invalid_parameter(
                f"{where}: the attribute name {name[:100]!r} must be 1 to 256 letters, digits, hyphens,"
                " underscores or periods, without a leading, trailing or doubled period"
            )
        if name.lower().startswith(("aws.", "amazon.")):
            raise invalid_parameter(
                f"{where}: the attribute name {name!r} uses a prefix AWS reserves (AWS., Amazon.)"
            )
        data_type = value.get("DataType", "") if isinstance(value, dict) else ""
        if not DATA_TYPE.fullmatch(data_type):
            raise invalid_parameter(
                f"{here}.DataType {data_type[:100]!r} must be String, Number or Binary, optionally"
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
            raise invalid_parameter(f"{here}: a Binary attribute needs a non-empty BinaryValue (base64)")
        return len(decoded)
    text = value.get("StringValue")
    if not isinstance(text, str) or not text:
        raise invalid_parameter(
            f"{here}: a {data_type.split('.')[0]} attribute needs a non-empty StringValue"
        )
    _check_characters(text, f"{here}.StringValue")
    if data_type.startswith("Number"):
        try:
            Decimal(text)
        except InvalidOperation:
            raise invalid_parameter(f"{here}.StringValue {text[:100]!r} is not a number") from None
    return len(text.encode())
