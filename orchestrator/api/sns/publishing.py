"""Publish and PublishBatch: a message on a topic, published exactly as a state machine's
``sns:publish`` task publishes it (the same envelope, channel and log), so ``redstep subscribe``
shows it and the topic's subscriptions receive it."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from orchestrator.api.errors import ApiError
from orchestrator.api.sns.context import Sns, invalid_parameter, sns_error
from orchestrator.runtime.notifications import publish as publish_envelope
from orchestrator.services import envelope

MAX_MESSAGE_BYTES = 262_144
"""SNS's 256 KiB for a message with its attributes."""
MAX_SUBJECT = 100
MAX_ATTRIBUTES = 10
MAX_BATCH_ENTRIES = 10
BATCH_ENTRY_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
DATA_TYPE = re.compile(r"(String|Number|Binary|String\.Array)(\.[^\s]{1,249})?")
SUBJECT = re.compile(r"[\x20-\x7e]+")


def publish(sns: Sns, request: dict[str, Any]) -> dict[str, Any]:
    if request.get("PhoneNumber"):
        raise invalid_parameter("PhoneNumber: redstep sends no SMS; publish to a TopicArn")
    arn = request.get("TopicArn") or request.get("TargetArn")
    if not arn:
        raise invalid_parameter("TopicArn or TargetArn Reason: no value for required parameter")
    member = "TopicArn" if request.get("TopicArn") else "TargetArn"
    sns.topic_of(arn, member)
    message = accepted(request, "")
    published = envelope({**message, "TopicArn": arn}, time.time())
    publish_envelope(sns.redis, sns.settings, published)
    return {"MessageId": published["MessageId"]}


def publish_batch(sns: Sns, request: dict[str, Any]) -> dict[str, Any]:
    arn = request["TopicArn"]
    sns.topic_of(arn)
    entries = request["PublishBatchRequestEntries"]
    if not entries:
        raise sns_error("EmptyBatchRequest", "The batch request doesn't contain any entries.")
    if len(entries) > MAX_BATCH_ENTRIES:
        raise sns_error(
            "TooManyEntriesInBatchRequest",
            f"The batch request contains {len(entries)} entries; the limit is {MAX_BATCH_ENTRIES}.",
        )
    ids = [entry["Id"] for entry in entries]
    if len(set(ids)) != len(ids):
        raise sns_error(
            "BatchEntryIdsNotDistinct", "Two or more batch entries in the request have the same Id."
        )
    for entry_id in ids:
        if not BATCH_ENTRY_ID.fullmatch(entry_id):
            raise sns_error(
                "InvalidBatchEntryId",
                f"The Id {entry_id[:100]!r} of a batch entry is not 1 to 80 letters, digits,"
                " hyphens or underscores.",
            )
    total = sum(len(entry["Message"].encode()) for entry in entries)
    if total > MAX_MESSAGE_BYTES:
        raise sns_error(
            "BatchRequestTooLong",
            f"The length of all the messages put together is {total} bytes,"
            f" more than SNS's {MAX_MESSAGE_BYTES}.",
        )
    successful, failed = [], []
    now = time.time()
    for index, entry in enumerate(entries):
        try:
            message = accepted(entry, f"PublishBatchRequestEntries.member.{index + 1}.")
        except ApiError as error:
            failed.append(
                {"Id": entry["Id"], "Code": error.code, "Message": error.message, "SenderFault": True}
            )
            continue
        published = envelope({**message, "TopicArn": arn}, now)
        publish_envelope(sns.redis, sns.settings, published)
        successful.append({"Id": entry["Id"], "MessageId": published["MessageId"]})
    return {"Successful": successful, "Failed": failed}


def accepted(request: dict[str, Any], where: str) -> dict[str, Any]:
    """Message, Subject and MessageAttributes of a Publish request or batch entry, once checked.

    Raises:
        ApiError: InvalidParameter naming the member (``where`` prefixes it in a batch).
    """
    text = request["Message"]
    if request.get("MessageStructure") is not None:
        text = _default_of_structure(request["MessageStructure"], text, where)
    if not text:
        raise invalid_parameter(f"{where}Message: Empty message")
    subject = request.get("Subject")
    if subject is not None and (len(subject) > MAX_SUBJECT or not SUBJECT.fullmatch(subject)):
        raise invalid_parameter(
            f"{where}Subject: a subject is 1 to {MAX_SUBJECT} printable ASCII characters, without line breaks"
        )
    attributes = request.get("MessageAttributes", {})
    _check_attributes(attributes, where)
    size = len(text.encode()) + sum(
        len(name.encode()) + len(json.dumps(value).encode()) for name, value in attributes.items()
    )
    if size > MAX_MESSAGE_BYTES:
        raise invalid_parameter(
            f"{where}Message too long: {size} bytes with its attributes, over SNS's {MAX_MESSAGE_BYTES}"
        )
    return {"Message": text, "Subject": subject, "MessageAttributes": attributes}


def _default_of_structure(structure: str, text: str, where: str) -> str:
    if structure != "json":
        raise invalid_parameter(
            f"{where}MessageStructure: the only structure is 'json', not {structure[:20]!r}"
        )
    try:
        messages = json.loads(text)
    except ValueError:
        messages = None
    if not isinstance(messages, dict) or not isinstance(messages.get("default"), str):
        raise invalid_parameter(
            f"{where}Message Structure - No default entry in JSON message body"
            " (with MessageStructure json, Message is a JSON object with a string 'default')"
        )
    # Every protocol redstep delivers to reads the default message.
    return str(messages["default"])


def _check_attributes(attributes: dict[str, Any], where: str) -> None:
    if len(attributes) > MAX_ATTRIBUTES:
        raise invalid_parameter(
            f"{where}MessageAttributes: at most {MAX_ATTRIBUTES} attributes, not {len(attributes)}"
        )
    for name, attribute in attributes.items():
        data_type = attribute.get("DataType", "")
        if not DATA_TYPE.fullmatch(data_type):
            raise invalid_parameter(
                f"{where}MessageAttributes: The message attribute '{name}' has an invalid message attribute"
                f" type {data_type[:50]!r}: String, Number, Binary or String.Array"
            )
        wanted = "BinaryValue" if data_type.startswith("Binary") else "StringValue"
        if attribute.get(wanted) is None:
            raise invalid_parameter(
                f"{where}MessageAttributes: The message attribute '{name}' with type '{data_type}' must"
                f" contain a non-empty {wanted}"
            )
