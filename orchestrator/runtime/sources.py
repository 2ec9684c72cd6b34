"""Source queues (the SQS role) and the event-source mapping that pulls them (the Lambda role).

A queue is a Redis stream whose consumer group is shared by every orchestrator. A pulled
message stays pending until the commit that starts its execution acknowledges (and deletes)
it; one left pending longer than the visibility timeout is claimed again, and one received
``max_receive_count`` times moves to the queue's dead-letter stream with its reason.

A message carries a producer-made id in its ``message_id`` field, and that id names its
execution. A send whose reply a dropped connection swallowed may have landed or not, so a
producer sends it again: should both land, under two entry ids, both carry the same message
id, and only one execution starts. An entry without the field (queued by hand, or by an
older producer) is named after its entry id.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from orchestrator.protocol.decoding import lossless_text, strict_loads
from orchestrator.runtime.clock import RedisClock
from orchestrator.runtime.keys import BODY_FIELD, GROUP, Keys
from orchestrator.settings import Settings

Clock = Callable[[], float]

MESSAGE_ID_FIELD = "message_id"
# The id becomes an execution name and sits inside a key's {hash tag}: AWS's rule for execution
# names that CloudWatch can log keeps out braces, colons, spaces and anything that is not ASCII.
MESSAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
MESSAGE_ID_RULE = "1 to 80 ASCII letters, digits, hyphens or underscores"


@dataclass
class Message:
    """One queued message.

    Attributes:
        queue: the queue's name.
        entry_id: the stream entry's id, for all that concerns the entry: acknowledging,
            deleting, claiming, counting deliveries, dead-lettering.
        name: the message id, which names the execution; two entries with one message id
            start one execution.
        body: the JSON body.
        receive_count: how often the entry was delivered.
    """

    queue: str
    entry_id: str
    name: str
    body: Any
    receive_count: int = 1


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def ensure_group(redis_client: redis.Redis, stream: str) -> None:
    """Create the ``orchestrators`` group on ``stream`` (and the stream) unless it exists.

    The group starts at id 0 so that messages sent before any consumer existed are delivered.
    """
    try:
        redis_client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def send_messages(
    redis_client: redis.Redis,
    settings: Settings,
    queue: str,
    bodies: list[Any],
    message_ids: list[str] | None = None,
) -> list[str]:
    """Append ``bodies`` (JSON-serializable) to ``queue`` in one round trip; returns their message ids.

    Each message id becomes its execution's name. Sending a body again with the same id (after
    a lost reply, say) starts no second execution.

    Args:
        redis_client: the connection.
        settings: the prefix.
        queue: the queue's name.
        bodies: the messages' bodies.
        message_ids: one id per body, as SQS's MessageDeduplicationId; by default each message
            gets a fresh UUID, as AWS names executions.

    Raises:
        ValueError: ``message_ids`` does not give one valid id per body, or a body is not JSON
            (it holds a NaN, an infinity, or a value JSON has no form for); nothing is sent.
    """
    if message_ids is None:
        message_ids = [str(uuid.uuid4()) for _ in bodies]
    elif len(message_ids) != len(bodies):
        raise ValueError(f"{len(message_ids)} message id(s) for {len(bodies)} message(s); nothing was sent")
    for index, message_id in enumerate(message_ids):
        problem = message_id_problem(message_id)
        if problem:
            raise ValueError(f"message_ids[{index}] {problem}; nothing was sent")
    texts = []
    for index, body in enumerate(bodies):
        try:
            texts.append(json.dumps(body, allow_nan=False))  # as the orchestrators read it back
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bodies[{index}] is not JSON: {exc}; nothing was sent") from None
    keys = Keys(settings.prefix)
    stream = keys.queue(queue)
    pipe = redis_client.pipeline(transaction=False)
    pipe.sadd(keys.queue_names, queue)  # listing queues then needs no SCAN
    for text, message_id in zip(texts, message_ids, strict=True):
        pipe.xadd(stream, {BODY_FIELD: text, MESSAGE_ID_FIELD: message_id})
    pipe.execute()
    return list(message_ids)


def message_id_problem(message_id: object) -> str:
    """Why ``message_id`` cannot name an execution, as words to follow the id's name; ``""`` if it can."""
    if not isinstance(message_id, str):
        return "is not a string"
    if not MESSAGE_ID.fullmatch(message_id):
        shown = message_id if len(message_id) <= 100 else message_id[:100] + "..."
        return f"{shown!r} is not {MESSAGE_ID_RULE}"
    return ""


def move_aside(
    pipe: redis.client.Pipeline,
    keys: Keys,
    stream: str,
    entry_id: str,
    fields: dict[Any, Any],
    reason: str,
    receive_count: int = 1,
) -> None:
    """Queue on ``pipe``: copy a malformed entry to the malformed stream with why, ack and drop it.

    Fields that are not UTF-8 are kept as backslash escapes: the entry is set aside for a
    person to read, and crashing on it would leave it pending forever.
    """
    raw = {lossless_text(k): lossless_text(v) for k, v in fields.items()}
    moved = {"stream": stream, "id": entry_id, "reason": reason, "receive_count": str(receive_count)}
    pipe.xadd(keys.malformed, {**moved, "fields": json.dumps(raw)})
    pipe.xack(stream, GROUP, entry_id)
    pipe.xdel(stream, entry_id)


class EventSourceMapping:
    """Pulls batches from one source queue for one consumer, as Lambda's event-source mapping does.

    Args:
        redis_client: the connection.
        settings: batch size, batching window, visibility timeout and max receive count.
        consumer: this orchestrator's consumer name in the group.
        queue: the queue's name (default: ``settings.source_queue``).
        clock: the time source; Redis's ``TIME`` by default (see runtime.clock), tests pass their own.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        settings: Settings,
        consumer: str,
        queue: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.redis = redis_client
        self.settings = settings
        self.consumer = consumer
        self.queue = queue or settings.source_queue
        self.keys = Keys(settings.prefix)
        self.stream = self.keys.queue(self.queue)
        self.clock = clock or RedisClock(redis_client)
        self._buffer: list[Message] = []
        self._window_opened: float | None = None
        self._last_reclaim = float("-inf")
        ensure_group(redis_client, self.stream)

    @property
    def reclaim_interval(self) -> float:
        # Claiming is a round trip; a quarter of the timeout keeps redelivery close to on time.
        return min(1.0, self.settings.visibility_timeout_seconds / 4)

    def poll(self, block_seconds: float | None = None) -> list[Message]:
        """One pull: a full batch, or what arrived once the batching window closed, else ``[]``."""
        self.reclaim_if_due()
        room = self.room
        if room > 0:
            block = None if block_seconds is None else max(1, int(block_seconds * 1000))
            reply = self.redis.xreadgroup(GROUP, self.consumer, {self.stream: ">"}, count=room, block=block)
            self.accept_entries(entries_of(reply))
        return self.take_batch()

    @property
    def room(self) -> int:
        """How many more messages the batch being filled takes."""
        return self.settings.batch_size - len(self._buffer)

    def reclaim_if_due(self) -> None:
        """Take back overdue messages, at most every :attr:`reclaim_interval` (it costs a round trip)."""
        now = self.clock()
        if now - self._last_reclaim >= self.reclaim_interval:
            self._last_reclaim = now
            self.accept_messages(self.reclaim())

    def pull_batch(self) -> list[Message]:
        """Wait up to the batching window for a full batch; what arrived by then (maybe ``[]``)."""
        deadline = self.clock() + self.settings.batching_window_seconds
        while True:
            remaining = deadline - self.clock()
            batch = self.poll(block_seconds=max(remaining, self.settings.poll_interval_seconds))
            if batch or remaining <= 0:
                return batch or self.flush()

    def accept_entries(self, entries: list[tuple[Any, dict[Any, Any]]]) -> None:
        """Take raw stream entries read for this consumer into the batch being filled."""
        messages, malformed = [], []
        for raw_id, fields in entries:
            message, reason = self.parse(text(raw_id), fields)
            if message is None:
                malformed.append((text(raw_id), fields, reason))
            else:
                messages.append(message)
        if malformed:
            pipe = self.redis.pipeline(transaction=True)
            for entry_id, fields, reason in malformed:
                move_aside(pipe, self.keys, self.stream, entry_id, fields, reason)
            pipe.execute()
        self.accept_messages(messages)

    def accept_messages(self, messages: list[Message]) -> None:
        if messages and not self._buffer:
            self._window_opened = self.clock()
        self._buffer.extend(messages)

    def take_batch(self) -> list[Message]:
        full = len(self._buffer) >= self.settings.batch_size
        window_closed = (
            self._window_opened is not None
            and self.clock() - self._window_opened >= self.settings.batching_window_seconds
        )
        if self._buffer and (full or window_closed):
            return self.flush()
        return []

    def flush(self) -> list[Message]:
        batch, self._buffer, self._window_opened = self._buffer, [], None
        return batch

    def parse(self, entry_id: str, fields: dict[Any, Any]) -> tuple[Message | None, str]:
        """The message an entry holds, or None and why it is malformed."""
        raw = fields.get(BODY_FIELD.encode(), fields.get(BODY_FIELD))
        if raw is None:
            return None, f"no {BODY_FIELD!r} field"
        try:
            body = strict_loads(raw)
        except ValueError as exc:
            return None, f"body is not JSON: {exc}"
        name = fields.get(MESSAGE_ID_FIELD.encode(), fields.get(MESSAGE_ID_FIELD, entry_id))
        if isinstance(name, bytes):
            try:
                name = name.decode()
            except UnicodeDecodeError:
                return None, f"{MESSAGE_ID_FIELD} is not UTF-8 text"
        problem = message_id_problem(name)
        if problem:
            return None, f"{MESSAGE_ID_FIELD} {problem}"
        return Message(self.queue, entry_id, name, body), ""

    def reclaim(self) -> list[Message]:
        """Claim messages left unacknowledged past the visibility timeout; dead-letter the worn out."""
        idle_ms = int(self.settings.visibility_timeout_seconds * 1000)
        reply = self.redis.xautoclaim(
            self.stream, GROUP, self.consumer, idle_ms, start_id="0-0", count=self.settings.batch_size
        )
        claimed, deleted = reply[1], reply[2] if len(reply) > 2 else []
        if deleted:
            self.redis.xack(self.stream, GROUP, *deleted)
        entries = [(raw_id, fields) for raw_id, fields in claimed if fields]
        if not entries:
            return []
        counts = self.delivery_counts([text(raw_id) for raw_id, _ in entries])
        fresh, worn_out = [], []
        for raw_id, fields in entries:
            message, _ = self.parse(text(raw_id), fields)
            if message is None:
                self.accept_entries([(raw_id, fields)])
                continue
            message.receive_count = counts.get(message.entry_id, 1)
            (worn_out if message.receive_count > self.settings.max_receive_count else fresh).append(message)
        self.dead_letter(worn_out)
        return fresh

    def delivery_counts(self, ids: list[str]) -> dict[str, int]:
        return delivery_counts(self.redis, self.stream, ids)

    def dead_letter(self, messages: list[Message]) -> None:
        """Move messages to the dead-letter stream with their reason, and off the queue, atomically."""
        if not messages:
            return
        pipe = self.redis.pipeline(transaction=True)
        for message in messages:
            received = message.receive_count - 1  # the claim that found it worn out is not a receive
            reason = (
                f"maxReceiveCount {self.settings.max_receive_count} exceeded: received {received} times "
                f"without being acknowledged within the visibility timeout "
                f"({self.settings.visibility_timeout_seconds:g}s)"
            )
            pipe.xadd(
                self.keys.dead_letters(self.queue),
                {
                    BODY_FIELD: json.dumps(message.body),
                    MESSAGE_ID_FIELD: message.name,
                    "queue": self.queue,
                    "reason": reason,
                    "receive_count": str(received),
                },
            )
            pipe.xack(self.stream, GROUP, message.entry_id)
            pipe.xdel(self.stream, message.entry_id)
        pipe.sadd(self.keys.dead_letter_queues, self.queue)
        pipe.execute()


def delivery_counts(redis_client: redis.Redis, stream: str, ids: list[str]) -> dict[str, int]:
    """How often each pending entry of ``stream`` was delivered, in one round trip."""
    pipe = redis_client.pipeline(transaction=False)
    for entry_id in ids:
        pipe.xpending_range(stream, GROUP, min=entry_id, max=entry_id, count=1)
    counts = {}
    for rows in pipe.execute():
        for row in rows:
            counts[text(row["message_id"])] = int(row["times_delivered"])
    return counts


def is_missing_group(error: Exception) -> bool:
    """Whether ``error`` says a stream or its consumer group is gone (FLUSHALL, Redis lost its data).

    NOGROUP answers a read of a stream without the group; UNBLOCKED, a blocking read whose
    stream was deleted while it waited.
    """
    return isinstance(error, redis.ResponseError) and ("NOGROUP" in str(error) or "UNBLOCKED" in str(error))


def entries_of(reply: Any) -> list[tuple[Any, dict[Any, Any]]]:
    """The entries of an XREADGROUP reply, whichever protocol (RESP2 list, RESP3 map) it came in."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return [entry for streams in reply.values() for batch in streams for entry in batch]
    return [entry for _, batch in reply for entry in batch]
