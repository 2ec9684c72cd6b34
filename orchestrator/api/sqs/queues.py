"""Queue actions: GetQueueUrl, ListQueues, GetQueueAttributes, CreateQueue, DeleteQueue, PurgeQueue."""

from __future__ import annotations

import time
from typing import Any

from orchestrator.api.pagination import listing_key
from orchestrator.api.sqs import attributes
from orchestrator.api.sqs.context import QUEUE_NAME, QUEUE_NAME_RULE, Sqs, invalid_parameter, sqs_error

MAX_LISTED = 1000


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
    found = attributes.answered(sqs, name, request.get("AttributeNames") or [])
    return {"Attributes": found} if found else {}


def create_queue(sqs: Sqs, request: dict[str, Any], host: str) -> dict[str, Any]:
    """A new queue, or the existing one of that name when the request asks for what it has."""
    name = request["QueueName"]
    if name.endswith(".fifo"):
        raise sqs_error(
            "UnsupportedOperation",
            f"{name!r} names a FIFO queue; redstep serves standard queues only: drop the .fifo suffix",
            "AWS.SimpleQueueService.UnsupportedOperation",
        )
    if not QUEUE_NAME.fullmatch(name):
        raise invalid_parameter(f"QueueName {name[:100]!r} is not valid: use {QUEUE_NAME_RULE}")
    wanted = attributes.checked(sqs, request.get("Attributes") or {})
    if sqs.queues.exists(name):
        have = attributes.current(sqs, name)
        differing = sorted(key for key, value in wanted.items() if have.get(key) != value)
        if differing:
            raise sqs_error(
                "QueueNameExists",
                f"A queue named {name!r} already exists with different values of {', '.join(differing)};"
                " ask for what it has (GetQueueAttributes), or use another name",
                "QueueAlreadyExists",
            )
        return {"QueueUrl": sqs.url(host, name)}
    now = str(int(time.time()))
    sqs.queues.create(name, {**wanted, "CreatedTimestamp": now, "LastModifiedTimestamp": now})
    return {"QueueUrl": sqs.url(host, name)}


def delete_queue(sqs: Sqs, request: dict[str, Any], host: str) -> dict[str, Any]:
    name = sqs.queue_of(request["QueueUrl"])
    if name == sqs.settings.source_queue:
        raise sqs_error(
            "UnsupportedOperation",
            f"{name!r} is the queue {sqs.settings.state_machine}'s event-source mapping pulls from and"
            " cannot be deleted; PurgeQueue empties it",
            "AWS.SimpleQueueService.UnsupportedOperation",
        )
    sqs.queues.delete(name)
    return {}


def purge_queue(sqs: Sqs, request: dict[str, Any], host: str) -> dict[str, Any]:
    sqs.queues.purge(sqs.queue_of(request["QueueUrl"]))
    return {}
