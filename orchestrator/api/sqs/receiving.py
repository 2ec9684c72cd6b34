"""ReceiveMessage, DeleteMessage and ChangeMessageVisibility (and their batches), on queues no
event-source mapping pulls.

ReceiveMessage's long poll (``WaitTimeSeconds``, or the queue's ``ReceiveMessageWaitTimeSeconds``)
waits in the event loop between short takes in a thread, and is dropped once its caller hangs up.

A receipt handle names the queue, the entry and the receive it came from; it is opaque to the
client, and one that does not decode, or names another queue, is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from starlette.concurrency import run_in_threadpool

from orchestrator.api.errors import ApiError
from orchestrator.api.sqs import attributes
from orchestrator.api.sqs.context import Sqs, invalid_parameter, sqs_error
from orchestrator.api.sqs.messages import check_batch
from orchestrator.runtime.receiving import HORIZON_SECONDS, Received, Redrive
from orchestrator.sqs_messages import md5_of_attributes, md5_of_body

MAX_MESSAGES = 10
MAX_WAIT_SECONDS = 20
SYSTEM_ATTRIBUTES = ("SenderId", "SentTimestamp", "ApproximateReceiveCount")


async def receive_message(sqs: Sqs, request: dict[str, Any], host: str) -> dict[str, Any]:
    asked, received = await run_in_threadpool(_first_take, sqs, request)
    # Measured from the first take, as the wait was before: the checks and the trim are not waiting.
    deadline = time.monotonic() + asked.wait
    while not received and (remaining := deadline - time.monotonic()) > 0:
        # The wait holds no thread; each take is short, so idle long polls leave the threads to
        # every other call.
        await sqs.arrivals.wait(asked.queue, remaining)
        received = await run_in_threadpool(_take, sqs, asked)
    system = set(request.get("MessageSystemAttributeNames") or []) | set(request.get("AttributeNames") or [])
    names = request.get("MessageAttributeNames") or []
    messages = [_message(sqs, asked.queue, message, system, names) for message in received]
    return {"Messages": messages} if messages else {}


@dataclass(frozen=True)
class _Asked:
    """What a ReceiveMessage asks for, the queue's settings filling in what it leaves out."""

    queue: str
    count: int
    visibility: int
    wait: int
    redrive: Redrive | None


def _take(sqs: Sqs, asked: _Asked) -> list[Received]:
    try:
        return sqs.receiver.take(asked.queue, asked.count, asked.visibility, asked.redrive)
    except redis.ResponseError as error:
        # DeleteQueue during the poll took the queue's group with it: say so, as at the start.
        if "NOGROUP" in str(error):
            sqs.existing(asked.queue)
        raise


def _first_take(sqs: Sqs, request: dict[str, Any]) -> tuple[_Asked, list[Received]]:
    """The request checked against the queue, and what is there at once (one trip to a thread)."""
    name = _receivable(sqs, request["QueueUrl"])
    settings = attributes.current(sqs, name)
    count = _within(request, "MaxNumberOfMessages", 1, MAX_MESSAGES, 1)
    visibility = _within(request, "VisibilityTimeout", 0, HORIZON_SECONDS, int(settings["VisibilityTimeout"]))
    wait = _within(
        request, "WaitTimeSeconds", 0, MAX_WAIT_SECONDS, int(settings["ReceiveMessageWaitTimeSeconds"])
    )
    redrive = None
    if "RedrivePolicy" in settings:
        policy = json.loads(settings["RedrivePolicy"])
        redrive = Redrive(policy["deadLetterTargetArn"].rsplit(":", 1)[1], int(policy["maxReceiveCount"]))
    sqs.receiver.prepare(name, int(settings["MessageRetentionPeriod"]))
    asked = _Asked(name, count, visibility, wait, redrive)
    return asked, sqs.receiver.take(name, count, visibility, redrive)


def delete_message(sqs: Sqs, request: dict[str, Any], host: str) -> dict[str, Any]:
    name = _receivable(sqs, request["QueueUrl"])
    sqs.receiver.delete(name, _entry_of(name, request["ReceiptHandle"]))
    return {}


def change_message_visibility(sqs: Sqs, request: dict[str, Any], host: str) -> dict[str, Any]:
    _change_visibility(sqs, _receivable(sqs, request["QueueUrl"]), request)
    return {}


def delete_message_batch(sqs: Sqs, request: dict[str, Any], host: str) -> dict[str, Any]:
    name = _receivable(sqs, request["QueueUrl"])
    return _each_entry(
        request["Entries"], lambda entry: sqs.receiver.delete(name, _entry_of(name, entry["ReceiptHandle"]))
    )


def change_message_visibility_batch(sqs: Sqs, request: dict[str, Any], host: str) -> dict[str, Any]:
    name = _receivable(sqs, request["QueueUrl"])
    return _each_entry(request["Entries"], lambda entry: _change_visibility(sqs, name, entry))


def _each_entry(entries: list[dict[str, Any]], act: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Act on each entry of a checked batch; what failed is reported by entry, as SQS does."""
    check_batch(entries)
    successful, failed = [], []
    for entry in entries:
        try:
            act(entry)
        except ApiError as error:
            failed.append(
                {"Id": entry["Id"], "SenderFault": True, "Code": error.code, "Message": error.message}
            )
        else:
            successful.append({"Id": entry["Id"]})
    return {"Successful": successful, "Failed": failed}


def _change_visibility(sqs: Sqs, name: str, request: dict[str, Any]) -> None:
    entry_id = _entry_of(name, request["ReceiptHandle"])
    visibility = _within(request, "VisibilityTimeout", 0, HORIZON_SECONDS, 0)
    if not sqs.receiver.in_flight(name, entry_id):
        raise sqs_error(
            "MessageNotInflight",
            "The message is not in flight: it was deleted, or its visibility timeout ran out;"
            " receive it again for a new receipt handle",
            "AWS.SimpleQueueService.MessageNotInflight",
        )
    sqs.receiver.change_visibility(name, entry_id, visibility)


def receipt_handle(queue: str, message: Received) -> str:
    raw = json.dumps([queue, message.entry_id, message.receive_count], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _entry_of(queue: str, handle: str) -> str:
    try:
        named_queue, entry_id, _ = json.loads(base64.urlsafe_b64decode(handle.encode()))
    except (ValueError, TypeError, binascii.Error):
        named_queue, entry_id = None, None
    if named_queue != queue or not isinstance(entry_id, str):
        raise sqs_error(
            "ReceiptHandleIsInvalid",
            f"The receipt handle {handle[:60]!r} is not valid for this queue: pass the ReceiptHandle"
            " that ReceiveMessage gave for a message of this queue",
        )
    return entry_id


def _receivable(sqs: Sqs, url: str) -> str:
    name = sqs.queue_of(url)
    if name == sqs.settings.source_queue:
        raise sqs_error(
            "UnsupportedOperation",
            f"{sqs.settings.state_machine}'s event-source mapping pulls {name!r}, as Lambda does; a"
            " receiver of its own would take records from it. Receive from a queue of your own",
            "AWS.SimpleQueueService.UnsupportedOperation",
        )
    return name


def _within(request: dict[str, Any], member: str, low: int, high: int, default: int) -> int:
    value = request.get(member)
    if value is None:
        return default
    if not low <= value <= high:
        raise invalid_parameter(
            f"Value {value} for parameter {member} is invalid. Reason: Must be between {low} and {high}"
        )
    return int(value)


def _message(sqs: Sqs, queue: str, message: Received, system: set[str], names: list[str]) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "MessageId": message.message_id,
        "ReceiptHandle": receipt_handle(queue, message),
        "MD5OfBody": md5_of_body(message.body),
        "Body": message.body,
    }
    known = {
        "SenderId": sqs.account,
        "SentTimestamp": str(message.sent_at_ms),
        "ApproximateReceiveCount": str(message.receive_count),
    }
    wanted = SYSTEM_ATTRIBUTES if "All" in system else [n for n in SYSTEM_ATTRIBUTES if n in system]
    if wanted:
        answer["Attributes"] = {name: known[name] for name in wanted}
    chosen = {key: value for key, value in message.attributes.items() if _asked(key, names)}
    if chosen:
        answer["MessageAttributes"] = chosen
        answer["MD5OfMessageAttributes"] = md5_of_attributes(chosen)
    return answer


def _asked(attribute: str, names: list[str]) -> bool:
    for name in names:
        if name in ("All", ".*") or name == attribute:
            return True
        if name.endswith(".*") and attribute.startswith(name[:-1]):
            return True
    return False
