"""Publish and PublishBatch: a message on a topic, published exactly as a state machine's
``sns:publish`` task publishes it (the same envelope, channel and log), so ``redstep subscribe``
shows it and the topic's subscriptions receive it."""

from __future__ import annotations

import re
import time
from typing import Any

from orchestrator.api.errors import ApiError
from orchestrator.api.sns.context import Sns, invalid_parameter, sns_error
from orchestrator.runtime.notifications import publish as publish_envelope
from orchestrator.services import envelope
from orchestrator.sns_messages import MAX_MESSAGE_BYTES, PublishRefused, checked_publish

MAX_BATCH_ENTRIES = 10
BATCH_ENTRY_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")


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
    try:
        return checked_publish(request, where)
    except PublishRefused as refused:
        raise invalid_parameter(refused.message) from None
