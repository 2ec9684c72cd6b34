"""Queue actions: GetQueueUrl, ListQueues, GetQueueAttributes."""

from __future__ import annotations

from typing import Any

from orchestrator.api.pagination import listing_key
from orchestrator.api.sqs.context import Sqs, sqs_error
from orchestrator.api.sqs.messages import MAX_MESSAGE_BYTES

MAX_LISTED = 1000
RETENTION_SECONDS = 345_600
"""SQS's default four days; redstep keeps a message until its execution starts or it is dead-lettered."""
# Every attribute GetQueueAttributes answers for "All", in the order AWS lists them.
ATTRIBUTE_NAMES = (
    "QueueArn",
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "VisibilityTimeout",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
)


def get_queue_url(sqs: Sqs, request: dict[str, Any], host: str) -> dict[str, Any]:
    owner = request.get("QueueOwnerAWSAccountId")
    name = request["QueueName"]
    if owner is not None and owner != sqs.account:
        raise sqs_error(
            "QueueDoesNotExist",
            f"The specified queue does not exist: {name[:100]!r} in account {owner[:20]!r}; this endpoint"
            f" serves account {sqs.account!r}",
            "AWS.SimpleQueueService.NonExistentQueue",
        )
    return {"QueueUrl": sqs.url(host, sqs.existing(name))}


def list_queues(sqs: Sqs, request: dict[str, Any], host: str) -> dict[str, Any]:
    prefix = request.get("QueueNamePrefix") or ""
    limit = request.get("MaxResults")
    if limit is not None and not 1 <= limit <= MAX_LISTED:
        raise sqs_error("InvalidParameterValue", f"MaxResults {limit} must be 1 to {MAX_LISTED}")
    names = [name for name in sqs.queues.names() if name.startswith(prefix)]
    listing = listing_key("ListQueues", prefix=prefix)
    if request.get("NextToken"):
        after = sqs.tokens.read(request["NextToken"], listing)
        names = [name for name in names if name > after]
    answer: dict[str, Any] = {}
    # As AWS: without MaxResults at most 1000 queues and no token; with it, pages and a token.
    page = names[: limit or MAX_LISTED]
    if limit is not None and len(names) > limit:
        answer["NextToken"] = sqs.tokens.issue(listing, page[-1])
    if page:
        answer["QueueUrls"] = [sqs.url(host, name) for name in page]
    return answer


def get_queue_attributes(sqs: Sqs, request: dict[str, Any], host: str) -> dict[str, Any]:
    name = sqs.queue_of(request["QueueUrl"])
    asked = request.get("AttributeNames") or []
    wanted = ATTRIBUTE_NAMES if "All" in asked else [n for n in ATTRIBUTE_NAMES if n in asked]
    if not wanted:
        return {}
    depth = sqs.queues.depth(name)
    values = {
        "QueueArn": sqs.arn(name),
        "ApproximateNumberOfMessages": depth.visible,
        "ApproximateNumberOfMessagesNotVisible": depth.in_flight,
        "ApproximateNumberOfMessagesDelayed": 0,
        "VisibilityTimeout": round(sqs.settings.visibility_timeout_seconds),
        "MaximumMessageSize": MAX_MESSAGE_BYTES,
        "MessageRetentionPeriod": RETENTION_SECONDS,
        "DelaySeconds": 0,
        "ReceiveMessageWaitTimeSeconds": 0,
    }
    return {"Attributes": {attribute: str(values[attribute]) for attribute in wanted}}
