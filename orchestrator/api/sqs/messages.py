"""SendMessage and SendMessageBatch: messages checked as SQS checks them, then queued.

A message sent to the pipeline's queue starts its execution through the event-source mapping,
as a record from ``redstep produce`` does: its MessageId is the execution's name.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from orchestrator.api.errors import ApiError
from orchestrator.api.sqs.context import Sqs, sqs_error
from orchestrator.runtime.queues import OutgoingMessage
from orchestrator.sqs_messages import (
    MessageRefused,
    check_message,
    check_supported,
    md5_of_attributes,
    md5_of_body,
)

MAX_BATCH_ENTRIES = 10
BATCH_ENTRY_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")


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
    body, attributes = request["MessageBody"], request.get("MessageAttributes") or {}
    try:
        check_supported(request, where)
        if not body:
            raise MessageRefused("MissingParameter", f"{where}MessageBody must not be empty")
        check_message(body, attributes, where)
    except MessageRefused as refused:
        raise sqs_error(refused.code, refused.message) from None
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
