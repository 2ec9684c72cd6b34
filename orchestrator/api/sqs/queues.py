"""Queue actions: GetQueueUrl, ListQueues, Get/SetQueueAttributes, CreateQueue, DeleteQueue, PurgeQueue,
ListDeadLetterSourceQueues."""

from __future__ import annotations

import json
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
    names = [name for name in sqs.queues.names() if name.startswith(prefix)]
    page, token = _page(sqs, request, names, listing_key("ListQueues", prefix=prefix))
    answer: dict[str, Any] = {"NextToken": token} if token else {}
    if page:
        answer["QueueUrls"] = [sqs.url(host, name) for name in page]
    return answer


def list_dead_letter_source_queues(sqs: Sqs, request: dict[str, Any], host: str) -> dict[str, Any]:
    target = sqs.arn(sqs.queue_of(request["QueueUrl"]))
    sources = sorted(
        name
        for name, stored in sqs.queues.every_queues_attributes().items()
        if "RedrivePolicy" in stored
        and json.loads(stored["RedrivePolicy"])["deadLetterTargetArn"] == target
        and sqs.queues.exists(name)
    )
    page, token = _page(sqs, request, sources, listing_key("ListDeadLetterSourceQueues", target=target))
    answer: dict[str, Any] = {"queueUrls": [sqs.url(host, name) for name in page]}
    return {**answer, "NextToken": token} if token else answer


def _page(sqs: Sqs, request: dict[str, Any], names: list[str], listing: str) -> tuple[list[str], str | None]:
    """One page of sorted ``names`` and the token for the next: as AWS, without MaxResults up to
    1000 names and no token."""
    limit = request.get("MaxResults")
    if limit is not None and not 1 <= limit <= MAX_LISTED:
        raise invalid_parameter(f"MaxResults {limit} must be 1 to {MAX_LISTED}")
    if request.get("NextToken"):
        after = sqs.tokens.read(request["NextToken"], listing)
        names = [name for name in names if name > after]
    page = names[: limit or MAX_LISTED]
    token = sqs.tokens.issue(listing, page[-1]) if limit is not None and len(names) > limit else None
    return page, token


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


def set_queue_attributes(sqs: Sqs, request: dict[str, Any], host: str) -> dict[str, Any]:
    """Change a queue's attributes; an empty RedrivePolicy removes it, as on AWS."""
    name = sqs.queue_of(request["QueueUrl"])
    given = dict(request["Attributes"])
    remove_redrive = given.get("RedrivePolicy") == ""
    if remove_redrive:
        del given["RedrivePolicy"]
    wanted = attributes.checked(sqs, given)
    if name == sqs.settings.source_queue:
        differing = sorted(k for k, v in wanted.items() if attributes.current(sqs, name).get(k) != v)
        if differing or remove_redrive:
            raise sqs_error(
                "UnsupportedOperation",
                f"{name!r} is the pipeline's queue: its settings come from the environment"
                f" (REDSTEP_VISIBILITY_TIMEOUT_SECONDS, ...), not SetQueueAttributes",
                "AWS.SimpleQueueService.UnsupportedOperation",
            )
        return {}
    stored = sqs.queues.attributes(name)
    if remove_redrive:
        stored.pop("RedrivePolicy", None)
    sqs.queues.set_attributes(name, {**stored, **wanted, "LastModifiedTimestamp": str(int(time.time()))})
    return {}


def purge_queue(sqs: Sqs, request: dict[str, Any], host: str) -> dict[str, Any]:
    sqs.queues.purge(sqs.queue_of(request["QueueUrl"]))
    return {}
