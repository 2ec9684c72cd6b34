"""Event intake: what the orchestrator takes off the event stream, checked before it is applied.

Workers report task outcomes and the timer script fires timers as entries on the event
stream. The intake reads them in the orchestrator's consumer group, takes over entries
that a dead orchestrator left pending, and turns entries into events. Entries that can
never be applied (malformed, or poison: delivered too often without a commit) are moved to
the malformed stream, where a person can inspect them, instead of being retried forever.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis

from orchestrator.asl.execution import ARRIVED_AT
from orchestrator.nested_executions import START_EXECUTION_EVENT
from orchestrator.protocol.decoding import strict_loads
from orchestrator.protocol.keys import EVENT_FIELD
from orchestrator.runtime.keys import GROUP, Keys
from orchestrator.runtime.sources import delivery_counts, entries_of, move_aside, text

log = logging.getLogger(__name__)

EVENT_BATCH = 500
KNOWN_EVENTS = frozenset(
    {
        "TaskSucceeded",
        "TaskFailed",
        "TaskHeartbeat",
        "TaskSubmitted",
        "TimerFired",
        "StopExecution",
        "ActivityStarted",
        START_EXECUTION_EVENT,
    }
)

Entry = tuple[Any, dict[Any, Any]]  # (raw stream entry id, raw fields), as redis-py returns them
Event = tuple[str, dict[str, Any]]  # (stream entry id, the event)


class EventIntake:
    """Reads, claims and checks the entries of the event stream for one orchestrator.

    Args:
        redis_client: the connection.
        keys: the key layout under the configured prefix.
        consumer: the orchestrator's name in the events consumer group.
        clock: the time source (epoch seconds).
        claim_idle_seconds: how long an event may sit unacknowledged with another
            orchestrator before this one takes it over (that one is presumed dead).
        max_deliveries: an event delivered more often than this is moved aside as poison.

    Attributes:
        last_claim: when abandoned events were last claimed; claims run at most every
            ``claim_idle_seconds / 2``, so setting it holds the next claim back.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        keys: Keys,
        consumer: str,
        clock: Callable[[], float],
        claim_idle_seconds: float,
        max_deliveries: int,
    ) -> None:
        self.redis = redis_client
        self.keys = keys
        self.consumer = consumer
        self.clock = clock
        self.claim_idle_seconds = claim_idle_seconds
        self.max_deliveries = max_deliveries
        self.last_claim = float("-inf")

    def queue_read(self, pipe: redis.client.Pipeline) -> None:
        """Add a read of new events to ``pipe``; pass its reply to :meth:`parse` via ``entries_of``."""
        pipe.xreadgroup(GROUP, self.consumer, {self.keys.events: ">"}, count=EVENT_BATCH)

    def read_events(self, block_seconds: float | None) -> list[Event]:
        """Events for this orchestrator: new ones, plus those a dead orchestrator left pending."""
        entries = self.claim_abandoned()
        if not entries:
            block = None if block_seconds is None else max(1, int(block_seconds * 1000))
            reply = self.redis.xreadgroup(
                GROUP, self.consumer, {self.keys.events: ">"}, count=EVENT_BATCH, block=block
            )
            entries = entries_of(reply)
        return self.parse(entries)

    def abandoned_events(self) -> list[Event]:
        """The events a dead orchestrator left pending, when a claim is due; else none."""
        return self.parse(self.claim_abandoned())

    def claim_abandoned(self) -> list[Entry]:
        """Take over entries idle past ``claim_idle_seconds``, less poison; at most every half of that."""
        now = self.clock()
        if now - self.last_claim < self.claim_idle_seconds / 2:
            return []
        self.last_claim = now
        idle_ms = int(self.claim_idle_seconds * 1000)
        reply = self.redis.xautoclaim(
            self.keys.events, GROUP, self.consumer, idle_ms, start_id="0-0", count=EVENT_BATCH
        )
        if len(reply) > 2 and reply[2]:
            self.redis.xack(self.keys.events, GROUP, *reply[2])
        return self.without_poison([(raw_id, fields) for raw_id, fields in reply[1] if fields])

    def without_poison(self, entries: list[Entry]) -> list[Entry]:
        """``entries`` less those delivered more than ``max_deliveries`` times, moved aside.

        An event whose iteration keeps failing (or keeps killing its orchestrator) would be
        claimed again forever; past the limit it goes to the malformed stream with its
        delivery count, where a person can inspect it.
        """
        if not entries:
            return entries
        counts = delivery_counts(self.redis, self.keys.events, [text(raw_id) for raw_id, _ in entries])
        limit = self.max_deliveries
        kept, poison = [], []
        for raw_id, fields in entries:
            count = counts.get(text(raw_id), 1)
            if count <= limit:
                kept.append((raw_id, fields))
                continue
            reason = f"delivered {count} times without its transition being committed (limit {limit})"
            poison.append((text(raw_id), fields, reason, count))
        self.move_aside(poison)
        return kept

    def parse(self, entries: list[Entry]) -> list[Event]:
        """The events ``entries`` hold; malformed ones are moved aside."""
        events, malformed = [], []
        for raw_id, fields in entries:
            entry_id = text(raw_id)
            event, reason = parse_event(fields)
            if event is None:
                malformed.append((entry_id, fields, reason, 1))
            else:
                events.append((entry_id, event))
        self.move_aside(malformed)
        return events

    def move_aside(self, entries: list[tuple[str, dict[Any, Any], str, int]]) -> None:
        """Move events aside in one transaction: (entry id, fields, reason, delivery count) each."""
        if not entries:
            return
        pipe = self.redis.pipeline(transaction=True)
        for entry_id, fields, reason, count in entries:
            log.warning("event %s moved aside: %s", entry_id, reason)
            move_aside(pipe, self.keys, self.keys.events, entry_id, fields, reason, count)
        pipe.execute()


def stamped(entry_id: str, event: dict[str, Any]) -> dict[str, Any]:
    """``event`` as the core takes it: with when its entry reached the stream, by Redis's clock.

    The entry id's milliseconds: the core judges a report's deadlines by it (``arrival``), not
    by when an orchestrator took it, so a report that came in time is on time however late it
    was read. The event itself stays as it was sent, wherever it is moved aside or replayed.
    """
    return {**event, ARRIVED_AT: int(entry_id.split("-", 1)[0]) / 1000}


def parse_event(fields: dict[Any, Any]) -> tuple[dict[str, Any] | None, str]:
    """The event an entry holds, or None and why it is malformed."""
    raw = fields.get(EVENT_FIELD.encode(), fields.get(EVENT_FIELD))
    if raw is None:
        return None, f"no {EVENT_FIELD!r} field"
    try:
        event = strict_loads(raw)
    except ValueError as exc:
        return None, f"not JSON: {exc}"
    if not isinstance(event, dict):
        return None, "the event is not a JSON object"
    missing = [f for f in ("type", "execution") if not isinstance(event.get(f), str)]
    if missing:
        return None, f"missing or non-string field(s): {', '.join(missing)}"
    if event["type"] not in KNOWN_EVENTS:
        return None, f"unknown event type {event['type']!r}"
    if event["type"] != "StopExecution" and not isinstance(event.get("token"), str):
        return None, "missing or non-string field(s): token"
    if event["type"] == START_EXECUTION_EVENT:
        missing = [f for f in ("parent", "machine") if not isinstance(event.get(f), str)]
        if missing:
            return None, f"missing or non-string field(s): {', '.join(missing)}"
        if event.get("sync", 0) not in (0, 1, 2):
            return None, "sync is not 0, 1 or 2"
        if event.get("sdk", False) not in (True, False):
            return None, "sdk is not true or false"
    return event, ""
