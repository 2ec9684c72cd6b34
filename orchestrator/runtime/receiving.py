"""Receiving from a queue as an SQS consumer does: visibility timeouts, receive counts, redrive.

Only queues that no event-source mapping pulls are received this way. A received message is
an entry pending in the queue's ``orchestrators`` group under the consumer ``sqs-api``, and its
visibility lives in the entry's idle time alone, so every step touches the queue's one key:

- every message turns visible again once idle for ``HORIZON_SECONDS`` (SQS's longest
  visibility timeout, 12 hours), when ``XAUTOCLAIM`` takes it back;
- receiving (or changing the visibility of) a message for ``v`` seconds sets its idle time to
  ``HORIZON_SECONDS - v``, so it turns visible ``v`` seconds later;
- the group's delivery count is the message's receive count.

Between a receive and the idle time it sets, the message is invisible for the whole horizon:
should serve die right there, the message comes back in 12 hours, never early.

Receiving never waits: a long poll takes what is there (``Receiver.take``, in a thread) and,
finding nothing, waits for a message on an asynchronous connection (``Arrivals``), then takes
again. The wait claims nothing, so a poll whose caller hung up leaves every message behind,
and a waiting poll holds no thread of the server's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis

from orchestrator.protocol.decoding import lossless_text
from orchestrator.runtime.blocking_reads import BLOCK_SLICE_SECONDS, BlockingWaits
from orchestrator.runtime.keys import BODY_FIELD, GROUP, Keys
from orchestrator.runtime.queues import ATTRIBUTES_FIELD, TEXT_FIELD
from orchestrator.runtime.sources import MESSAGE_ID_FIELD, delivery_counts, ensure_group, entries_of, text
from orchestrator.settings import Settings

CONSUMER = "sqs-api"
HORIZON_SECONDS = 43_200
WAIT_SLICE_SECONDS = 1.0
"""While messages are in flight, a long poll takes again this often: one turning visible wakes no read."""
WAITER_CLIENT_NAME = "redstep-sqs-wait"


@dataclass(frozen=True)
class Received:
    """One message as a receiver gets it.

    Attributes:
        entry_id: its stream entry id (what deleting and changing visibility name).
        message_id: its id (the execution name it would get on the pipeline's queue).
        body: the body as it was sent.
        attributes: its message attributes.
        receive_count: how often it was received, this time included.
        sent_at_ms: when it was sent (the entry id's milliseconds).
    """

    entry_id: str
    message_id: str
    body: str
    attributes: dict[str, Any]
    receive_count: int
    sent_at_ms: int


@dataclass(frozen=True)
class Redrive:
    """Where messages received too often go: the dead-letter queue's name and the limit."""

    target: str
    max_receive_count: int


class Receiver:
    """Receives, deletes and hides messages of the queues no event-source mapping pulls.

    Args:
        redis_client: the connection.
        settings: the prefix.
    """

    def __init__(self, redis_client: redis.Redis, settings: Settings) -> None:
        self.redis = redis_client
        self.keys = Keys(settings.prefix)

    def prepare(self, queue: str, retention: int) -> None:
        """Make the queue's group if it is missing and drop messages older than ``retention`` seconds."""
        stream = self.keys.queue(queue)
        ensure_group(self.redis, stream)
        self.redis.xtrim(stream, minid=f"{int((time.time() - retention) * 1000)}-0", approximate=False)

    def take(self, queue: str, count: int, visibility: int, redrive: Redrive | None) -> list[Received]:
        """Up to ``count`` visible messages, hidden for ``visibility`` seconds, without waiting;
        those received more than the redrive's limit move to its dead-letter queue instead."""
        stream = self.keys.queue(queue)
        received = self._visible_again(queue, count, redrive)
        if len(received) < count:
            reply = self.redis.xreadgroup(GROUP, CONSUMER, {stream: ">"}, count=count - len(received))
            received += [_received(raw_id, fields, 1) for raw_id, fields in entries_of(reply)]
        self._hide(stream, [message.entry_id for message in received], visibility)
        return received

    def delete(self, queue: str, entry_id: str) -> None:
        stream = self.keys.queue(queue)
        pipe = self.redis.pipeline(transaction=True)
        pipe.xack(stream, GROUP, entry_id)
        pipe.xdel(stream, entry_id)
        pipe.execute()

    def in_flight(self, queue: str, entry_id: str) -> bool:
        """Whether the message was received and not deleted nor visible again."""
        rows = self.redis.xpending_range(
            self.keys.queue(queue), GROUP, min=entry_id, max=entry_id, count=1, idle=HORIZON_SECONDS * 1000
        )
        return not rows and bool(
            self.redis.xpending_range(self.keys.queue(queue), GROUP, min=entry_id, max=entry_id, count=1)
        )

    def change_visibility(self, queue: str, entry_id: str, visibility: int) -> None:
        self._hide(self.keys.queue(queue), [entry_id], visibility)

    def _hide(self, stream: str, entry_ids: list[str], visibility: int) -> None:
        if entry_ids:
            idle_ms = (HORIZON_SECONDS - visibility) * 1000
            # JUSTID: setting the idle time is no delivery, so the receive count stays.
            self.redis.xclaim(stream, GROUP, CONSUMER, 0, entry_ids, idle=idle_ms, justid=True)

    def _visible_again(self, queue: str, count: int, redrive: Redrive | None) -> list[Received]:
        stream = self.keys.queue(queue)
        reply = self.redis.xautoclaim(stream, GROUP, CONSUMER, HORIZON_SECONDS * 1000, "0-0", count=count)
        claimed, deleted = reply[1], reply[2] if len(reply) > 2 else []
        if deleted:
            self.redis.xack(stream, GROUP, *deleted)
        entries = [(raw_id, fields) for raw_id, fields in claimed if fields]
        counts = delivery_counts(self.redis, stream, [text(raw_id) for raw_id, _ in entries])
        received = [_received(raw_id, fields, counts.get(text(raw_id), 1)) for raw_id, fields in entries]
        if redrive is None:
            return received
        worn_out = [message for message in received if message.receive_count > redrive.max_receive_count]
        self._move(
            stream, redrive.target, [(e, f) for e, f in entries if text(e) in {m.entry_id for m in worn_out}]
        )
        return [message for message in received if message not in worn_out]

    def _move(self, stream: str, target: str, entries: list[tuple[Any, dict[Any, Any]]]) -> None:
        """Move entries, fields and all, to the dead-letter queue ``target`` as new messages."""
        if not entries:
            return
        pipe = self.redis.pipeline(transaction=True)
        for raw_id, fields in entries:
            pipe.xadd(self.keys.queue(target), fields)
            pipe.xack(stream, GROUP, raw_id)
            pipe.xdel(stream, raw_id)
        pipe.execute()


class Arrivals(BlockingWaits):
    """Waits for messages sent to a queue, on a connection of its own that blocks without a thread.

    Args:
        settings: the Redis URL and the key prefix.
    """

    client_name = WAITER_CLIENT_NAME

    async def wait(self, queue: str, seconds: float) -> bool:
        """Wait up to ``seconds`` for a message of ``queue`` that no receive got yet; whether one came.

        A message sent after the last take and before this wait began counts: the read starts
        after the last message the group delivered, not at the stream's end. It is a plain
        XREAD, so it delivers nothing; another receiver may take the message first.

        A received message turning visible again wakes no read, so while any is in flight the
        wait ends after ``WAIT_SLICE_SECONDS`` for the caller to look again; with none in
        flight only a new message can come, and it waits up to ``BLOCK_SLICE_SECONDS``.
        """
        stream = self.keys.queue(queue)
        connection = self.connection()
        after, in_flight = await _group_state(connection, stream)
        seconds = min(seconds, WAIT_SLICE_SECONDS if in_flight else BLOCK_SLICE_SECONDS)
        reply = await connection.xread({stream: after}, count=1, block=max(1, int(seconds * 1000)))
        return bool(reply)


async def _group_state(connection: aioredis.Redis, stream: str) -> tuple[str, int]:
    """The id of the last message the group delivered, and how many delivered ones are in flight."""
    try:
        groups = await connection.xinfo_groups(stream)
    except redis.ResponseError:
        return "0-0", 0  # the stream is gone (the queue was deleted): any message is a new one
    for group in groups:
        if text(group["name"]) == GROUP:
            return text(group["last-delivered-id"]), int(group["pending"])
    return "0-0", 0


def _received(raw_id: Any, fields: dict[Any, Any], receive_count: int) -> Received:
    entry_id = text(raw_id)
    values = {lossless_text(key): lossless_text(value) for key, value in fields.items()}
    body = values.get(BODY_FIELD, "null")
    if values.get(TEXT_FIELD):
        body = json.loads(body)
    return Received(
        entry_id=entry_id,
        message_id=values.get(MESSAGE_ID_FIELD, entry_id),
        body=body if isinstance(body, str) else json.dumps(body),
        attributes=json.loads(values[ATTRIBUTES_FIELD]) if ATTRIBUTES_FIELD in values else {},
        receive_count=receive_count,
        sent_at_ms=int(entry_id.split("-")[0]),
    )
