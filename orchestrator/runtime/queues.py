"""The source queues as SQS sees them: which exist, how deep they are, and sending onto them.

A queue exists when its stream does, and the pipeline's own queue (``settings.source_queue``)
always exists: the orchestrators create its stream when they first pull. A message sent here
is an ordinary source-queue entry (``body`` JSON, ``message_id`` naming its execution), so the
event-source mapping starts it exactly as a record from ``redstep produce``. What SQS adds is
kept beside it in the entry: the body's exact text when it is not JSON (``text``), and the
message attributes (``attributes``, JSON). The attributes a queue was created with are kept
in ``{p}:queue-attributes``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis

from orchestrator.protocol.decoding import lossless_text
from orchestrator.runtime.keys import BODY_FIELD, GROUP, Keys
from orchestrator.runtime.sources import MESSAGE_ID_FIELD, ensure_group, message_id_problem
from orchestrator.settings import Settings

TEXT_FIELD = "text"
ATTRIBUTES_FIELD = "attributes"


@dataclass(frozen=True)
class OutgoingMessage:
    """One message to queue.

    Attributes:
        message_id: its id, which names its execution.
        body: the body exactly as the sender wrote it.
        attributes: SQS message attributes (name -> ``{"DataType", "StringValue"|"BinaryValue"}``).
    """

    message_id: str
    body: str
    attributes: dict[str, Any]

    def fields(self) -> dict[str, str]:
        """The stream entry: JSON bodies go in as they are; any other text goes in as a JSON string."""
        fields = {MESSAGE_ID_FIELD: self.message_id}
        if json_text(self.body):
            fields[BODY_FIELD] = self.body
        else:
            fields[BODY_FIELD] = json.dumps(self.body)
            fields[TEXT_FIELD] = "1"
        if self.attributes:
            fields[ATTRIBUTES_FIELD] = json.dumps(self.attributes, separators=(",", ":"))
        return fields


@dataclass(frozen=True)
class QueueDepth:
    """How many messages wait to be received (``visible``) and how many are received, not deleted."""

    visible: int
    in_flight: int


class Queues:
    """The source queues of one installation.

    Args:
        redis_client: the connection.
        settings: the prefix and the pipeline's own queue.
    """

    def __init__(self, redis_client: redis.Redis, settings: Settings) -> None:
        self.redis = redis_client
        self.settings = settings
        self.keys = Keys(settings.prefix)

    def exists(self, name: str) -> bool:
        return name == self.settings.source_queue or self.redis.type(self.keys.queue(name)) in (
            b"stream",
            "stream",
        )

    def names(self) -> list[str]:
        """Every queue's name, sorted: the ones sent to or created, kept in a set (no SCAN needed)."""
        found = {lossless_text(name) for name in self.redis.smembers(self.keys.queue_names)}
        found.add(self.settings.source_queue)
        return sorted(found)

    def depth(self, name: str) -> QueueDepth:
        """Received entries are pending in the group; acknowledged ones are deleted, so the rest wait."""
        stream = self.keys.queue(name)
        pipe = self.redis.pipeline(transaction=False)
        pipe.xlen(stream)
        pipe.xinfo_groups(stream)
        try:
            length, groups = pipe.execute()
        except redis.ResponseError:  # no stream yet: nothing was ever sent
            return QueueDepth(0, 0)
        pending = sum(int(group["pending"]) for group in groups if lossless_text(group["name"]) == GROUP)
        return QueueDepth(max(0, int(length) - pending), pending)

    def attributes(self, name: str) -> dict[str, str]:
        """The attributes queue ``name`` was created with (``{}`` for one made without CreateQueue)."""
        stored = self.redis.hget(self.keys.queue_attributes, name)
        return dict(json.loads(stored)) if stored else {}

    def every_queues_attributes(self) -> dict[str, dict[str, str]]:
        """The attributes of every queue CreateQueue made, by name."""
        stored = self.redis.hgetall(self.keys.queue_attributes)
        return {lossless_text(name): dict(json.loads(value)) for name, value in stored.items()}

    def set_attributes(self, name: str, attributes: dict[str, str]) -> None:
        """Replace the attributes queue ``name`` was created with (or, made without CreateQueue, has)."""
        self.redis.hset(self.keys.queue_attributes, name, json.dumps(attributes, sort_keys=True))

    def create(self, name: str, attributes: dict[str, str]) -> None:
        """Record ``attributes`` for queue ``name`` and create its stream and consumer group.

        The attributes go first: a stream is what makes a queue exist, so none is seen without them.
        """
        self.set_attributes(name, attributes)
        ensure_group(self.redis, self.keys.queue(name))
        self.redis.sadd(self.keys.queue_names, name)

    def delete(self, name: str) -> None:
        """Remove the queue, its messages and its attributes (its dead letters stay to be read)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(self.keys.queue(name))
        pipe.hdel(self.keys.queue_attributes, name)
        pipe.srem(self.keys.queue_names, name)
        pipe.execute()

    def purge(self, name: str) -> int:
        """Delete every message of the queue; how many there were.

        Messages already received stay pending in the group without their entries; the
        event-source mapping acknowledges such ids when it next reclaims.
        """
        return int(self.redis.xtrim(self.keys.queue(name), maxlen=0, approximate=False))

    def send(self, name: str, messages: list[OutgoingMessage]) -> None:
        """Append ``messages`` to queue ``name`` in one round trip.

        Raises:
            ValueError: a message id cannot name an execution; nothing is sent.
        """
        for message in messages:
            if problem := message_id_problem(message.message_id):
                raise ValueError(f"message id {problem}; nothing was sent")
        stream = self.keys.queue(name)
        pipe = self.redis.pipeline(transaction=False)
        for message in messages:
            pipe.xadd(stream, message.fields())
        pipe.execute()


def json_text(body: str) -> bool:
    """Whether ``body`` is a JSON document (no NaN or Infinity, which JSON does not have)."""
    try:
        json.loads(body, parse_constant=_refuse)
    except (ValueError, RecursionError):
        return False
    return True


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
