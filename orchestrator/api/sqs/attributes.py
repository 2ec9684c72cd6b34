"""Queue attributes: those CreateQueue accepts, checked as SQS checks them, and those
GetQueueAttributes answers.

A queue's settable attributes are its defaults (the pipeline's queue takes its visibility
timeout from the environment) overlaid with what CreateQueue gave it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from orchestrator.api.errors import ApiError
from orchestrator.api.sqs.context import QUEUE_NAME, Sqs, sqs_error
from orchestrator.sqs_messages import MAX_MESSAGE_BYTES

RETENTION_SECONDS = 345_600
"""SQS's default four days."""
# What CreateQueue accepts: name -> (lowest, highest); RedrivePolicy is checked on its own.
NUMBER_LIMITS = {
    "VisibilityTimeout": (0, 43_200),
    "MessageRetentionPeriod": (60, 1_209_600),
    "ReceiveMessageWaitTimeSeconds": (0, 20),
    "MaximumMessageSize": (1_024, MAX_MESSAGE_BYTES),
    "DelaySeconds": (0, 0),
}
SETTABLE = (*NUMBER_LIMITS, "RedrivePolicy")
COUNTED = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)
STAMPS = ("CreatedTimestamp", "LastModifiedTimestamp")
ANSWERED = ("QueueArn", *COUNTED, *STAMPS, *SETTABLE)


def checked(sqs: Sqs, attributes: dict[str, Any]) -> dict[str, str]:
    """The attributes of a CreateQueue request once SQS would accept them.

    Raises:
        ApiError: InvalidAttributeName for one redstep does not take, InvalidAttributeValue
            for a value out of its range, saying which and what is allowed.
    """
    result: dict[str, str] = {}
    for name, value in attributes.items():
        if name not in SETTABLE:
            raise sqs_error(
                "InvalidAttributeName",
                f"Unknown or unsupported queue attribute {name[:100]!r}: redstep's queues are standard"
                f" queues and take {', '.join(SETTABLE)}",
            )
        if not isinstance(value, str):
            raise _bad_value(name, value, "a string")
        result[name] = _redrive_policy(sqs, value) if name == "RedrivePolicy" else _number(name, value)
    return result


def current(sqs: Sqs, name: str) -> dict[str, str]:
    """The settable attributes queue ``name`` has now."""
    visibility = sqs.settings.visibility_timeout_seconds if name == sqs.settings.source_queue else 30
    defaults = {
        "VisibilityTimeout": str(round(visibility)),
        "MessageRetentionPeriod": str(RETENTION_SECONDS),
        "ReceiveMessageWaitTimeSeconds": "0",
        "MaximumMessageSize": str(MAX_MESSAGE_BYTES),
        "DelaySeconds": "0",
    }
    return {**defaults, **sqs.queues.attributes(name)}


def answered(sqs: Sqs, name: str, asked: list[str]) -> dict[str, str]:
    """GetQueueAttributes' ``Attributes`` for the names ``asked`` (``All`` for every one)."""
    wanted = ANSWERED if "All" in asked else [n for n in ANSWERED if n in asked]
    values: dict[str, Callable[[], Any]] = {"QueueArn": lambda: sqs.arn(name)}
    if any(n in COUNTED for n in wanted):
        depth = sqs.queues.depth(name)
        values.update(
            ApproximateNumberOfMessages=lambda: depth.visible,
            ApproximateNumberOfMessagesNotVisible=lambda: depth.in_flight,
            ApproximateNumberOfMessagesDelayed=lambda: 0,
        )
    settable = current(sqs, name)
    answer = {n: str(values[n]()) for n in wanted if n in values}
    answer.update({n: settable[n] for n in wanted if n in settable})
    return dict(sorted(answer.items(), key=lambda item: ANSWERED.index(item[0])))


def _number(name: str, value: str) -> str:
    low, high = NUMBER_LIMITS[name]
    if not value.strip().isdigit() or not low <= int(value) <= high:
        if name == "DelaySeconds":
            raise _bad_value(name, value, "0: redstep's queues deliver at once, without delay")
        raise _bad_value(name, value, f"a whole number from {low} to {high}")
    return str(int(value))


def _redrive_policy(sqs: Sqs, value: str) -> str:
    try:
        policy = json.loads(value)
    except ValueError:
        policy = None
    shape = 'a JSON object {"deadLetterTargetArn": "<queue ARN>", "maxReceiveCount": 1 to 1000}'
    if not isinstance(policy, dict) or set(policy) != {"deadLetterTargetArn", "maxReceiveCount"}:
        raise _bad_value("RedrivePolicy", value, shape)
    count = policy["maxReceiveCount"]
    if isinstance(count, str) and count.isdigit():
        count = int(count)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1000:
        raise _bad_value("RedrivePolicy", value, f"{shape}; its maxReceiveCount is not 1 to 1000")
    target = policy["deadLetterTargetArn"]
    prefix = sqs.arn("")
    if (
        not isinstance(target, str)
        or not target.startswith(prefix)
        or not QUEUE_NAME.fullmatch(target[len(prefix) :])
    ):
        raise _bad_value("RedrivePolicy", value, f"{shape}, where the ARN is {prefix}<queue name>")
    if not sqs.queues.exists(target[len(prefix) :]):
        raise _bad_value("RedrivePolicy", value, f"{shape}; its dead-letter queue {target!r} does not exist")
    return json.dumps({"deadLetterTargetArn": target, "maxReceiveCount": count}, separators=(",", ":"))


def _bad_value(name: str, value: object, expected: str) -> ApiError:
    shown = value[:200] if isinstance(value, str) else value
    return sqs_error(
        "InvalidAttributeValue", f"Invalid value for the parameter {name}: {shown!r}; expected {expected}"
    )
