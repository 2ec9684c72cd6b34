"""A timer or a stop waits for the events of its execution that reached the stream before it.

The core judges a report by when it reached the event stream, so a result that came in time
wins over a timeout that fired after it, however late the orchestrators take it. But an event
read by an orchestrator that died before committing it stays pending with that orchestrator
until another claims it, ``claim_idle_seconds`` later, and whatever comes after it meanwhile is
read by the live ones:

- a task's timeout that fires then would be applied first, and the result that came in time
  would lose to it;
- a StopExecution (a user's, or a parent's for its abandoned child) would be applied before the
  older event, and could find nothing to stop: the child's start, still pending, would then
  start a child nobody waits for.

So a TimerFired or StopExecution event whose execution has an older event pending with another
consumer of the group for ``STALE_SECONDS`` or more is not applied yet: the orchestrator holds
it, unacknowledged, and judges it again every ``RECHECK_SECONDS`` until the older event is
committed. A held event stays in this orchestrator's pending entries under its own entry id, so
it waits only for events older than itself (newer ones never hold it back, however busy its
execution), and an orchestrator that dies holding it leaves it to be claimed as any event it
read.

Entries pending for less than ``STALE_SECONDS`` are a live orchestrator's work in progress,
committed within milliseconds; learning their executions would cost a read per entry of every
batch in flight, so they are not waited for. What this leaves: an event read in the last tenth
of a second before its orchestrator died, or a live orchestrator's commit racing by a few
milliseconds, can still be overtaken by a timer or a stop.

Only batches that hold a timer or a stop pay for the check: one XPENDING summary, and when
other consumers hold entries, one XPENDING per consumer for its stale ones, and a read of each
of those (at most ``PENDING_LOOKED_AT`` per consumer; past that, every such event of the batch
waits, the safe side).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis

from orchestrator.runtime.intake import Event, parse_event
from orchestrator.runtime.keys import GROUP, Keys
from orchestrator.runtime.sources import text

log = logging.getLogger(__name__)

RECHECK_SECONDS = 0.25
PENDING_LOOKED_AT = 1000
STALE_SECONDS = 0.1
"""How long an entry sits with another orchestrator before a timer or a stop waits for it."""
ORDERED = frozenset({"TimerFired", "StopExecution"})
"""The events that wait for their execution's older ones held elsewhere."""


def stream_order(entry_id: str) -> tuple[int, int]:
    """An entry id as the stream orders it (``"1700000000000-3"`` -> (1700000000000, 3))."""
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)


class HeldEvents:
    """The timers and stops one orchestrator holds back, unacknowledged, until the older events
    of their execution that other orchestrators hold are committed."""

    def __init__(
        self, redis_client: redis.Redis, keys: Keys, consumer: str, recheck_seconds: float = RECHECK_SECONDS
    ) -> None:
        self.redis = redis_client
        self.keys = keys
        self.consumer = consumer
        self.recheck_seconds = recheck_seconds
        self.held: dict[str, dict[str, Any]] = {}  # entry id -> its event
        self._next_check = 0.0  # time.monotonic() from which the held events are judged again

    def sort_out(self, events: list[Event]) -> list[Event]:
        """``events`` to apply now, in the order they reached the stream: the held events whose
        wait is over join them, and the timers and stops that must wait are held instead."""
        candidates = [event for event in events if event[0] not in self.held]  # one claimed back
        now = time.monotonic()
        if self.held and now >= self._next_check:
            candidates = sorted([*candidates, *self.held.items()], key=lambda event: stream_order(event[0]))
            self.held = {}
        waiting = behind_others(self.redis, self.keys, self.consumer, candidates)
        if not waiting:
            return candidates
        if not self.held:
            self._next_check = now + self.recheck_seconds
        self.held.update(waiting)
        log.debug("%d timer(s) or stop(s) wait for older events another orchestrator holds", len(self.held))
        return [event for event in candidates if event[0] not in self.held]


def behind_others(redis_client: redis.Redis, keys: Keys, consumer: str, events: list[Event]) -> list[Event]:
    """The timers and stops of ``events`` whose execution has an older entry that has sat
    ``STALE_SECONDS`` or more with another consumer (one that died holding it, or is stalled)."""
    ordered = [(entry_id, event) for entry_id, event in events if event.get("type") in ORDERED]
    if not ordered:
        return []
    newest = max((entry_id for entry_id, _ in ordered), key=stream_order)
    summary = redis_client.xpending(keys.events, GROUP)
    others = [text(row["name"]) for row in summary.get("consumers") or [] if int(row["pending"])]
    others = [name for name in others if name != consumer]
    if not others:
        return []
    pipe = redis_client.pipeline(transaction=False)
    stale_ms = int(STALE_SECONDS * 1000)
    for other in others:
        pipe.xpending_range(
            keys.events,
            GROUP,
            min="-",
            max=newest,
            count=PENDING_LOOKED_AT + 1,
            consumername=other,
            idle=stale_ms,
        )
    held_by_others = pipe.execute()
    if any(len(rows) > PENDING_LOOKED_AT for rows in held_by_others):
        return ordered
    elsewhere = [text(row["message_id"]) for rows in held_by_others for row in rows]
    if not elsewhere:
        return []
    for entry_id in elsewhere:
        pipe.xrange(keys.events, min=entry_id, max=entry_id, count=1)
    entries = [entry for found in pipe.execute() for entry in found]
    oldest_elsewhere: dict[str, tuple[float, int]] = {}
    for raw_id, fields in entries:
        event, _ = parse_event(fields)  # a malformed entry is no execution's: the intake sets it aside
        order = stream_order(text(raw_id))
        if event is not None and order < oldest_elsewhere.get(event["execution"], (float("inf"), 0)):
            oldest_elsewhere[event["execution"]] = order
    return [
        (entry_id, event)
        for entry_id, event in ordered
        if (oldest := oldest_elsewhere.get(event.get("execution", ""))) is not None
        and oldest < stream_order(entry_id)
    ]
