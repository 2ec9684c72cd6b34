"""Ways out for stuck work: stop an execution, and see and replay the events moved aside.

Stopping is AWS's StopExecution: the execution ends ABORTED with an ExecutionAborted event
holding the error and cause given. The request travels as a ``StopExecution`` event on the
orchestrators' event stream, so it commits through the same exactly-once path as every other
transition: the core ends the execution, cancels its timers and forgets its tokens, and a
task report that arrives later changes nothing. It works whether the execution is stuck
(nothing else would ever move it) or running normally. As on AWS, stopping an execution that
already ended is no error and changes nothing.

The orchestrators move aside (to ``{p}:malformed``, with a reason and a delivery count) the
events they can never apply: malformed ones, poison (delivered ``max_event_deliveries`` times
without a commit) and those whose commit Redis refuses (a key of the wrong type). Once the
cause is fixed, replaying puts an event back on the event stream byte for byte; the commit's
checks (the execution's version, the token it waits on) make a replay of an event that was
applied already change nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import redis

from orchestrator.protocol.decoding import lossless_text
from orchestrator.protocol.keys import EVENT_FIELD
from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import FINISHED_STATUSES, Keys
from orchestrator.runtime.movers import json_object
from orchestrator.runtime.optimistic import Attempt, Lost, commit_optimistically, watched_key_changed
from orchestrator.settings import Settings

ERROR_LIMIT, CAUSE_LIMIT = 256, 32_768  # AWS's StopExecution limits, in characters
READ_BATCH = 1000


class ExecutionNotFound(LookupError):
    """No execution has the name asked for (AWS: ExecutionDoesNotExist)."""


@dataclass
class Stopped:
    """What a stop request found: the execution's status, and whether a request was sent."""

    name: str
    status: str
    requested: bool
    stop_date: float | None = None


def stop_execution(
    redis_client: redis.Redis,
    settings: Settings,
    name: str,
    error: str | None = None,
    cause: str | None = None,
) -> Stopped:
    """Ask the orchestrators to abort execution ``name`` (as StopExecution).

    Returns:
        For a running execution, ``requested`` True (the orchestrators apply it); for one that
        already ended, its status and stop date, and nothing is sent.

    Raises:
        ValueError: ``error`` or ``cause`` is longer than AWS allows.
        ExecutionNotFound: no execution has that name.
    """
    for label, value, limit in (("error", error, ERROR_LIMIT), ("cause", cause, CAUSE_LIMIT)):
        if value is not None and len(value) > limit:
            raise ValueError(f"the {label} is {len(value)} characters long; StopExecution allows {limit}")
    client = Client(redis_client, settings)
    described = client.describe(name)
    if described is None:
        raise ExecutionNotFound(f"no execution named {name!r}")
    if described["status"] in FINISHED_STATUSES:
        return Stopped(name, described["status"], False, described.get("stopDate"))
    client.stop_execution(name, error=error, cause=cause)
    return Stopped(name, described["status"], True)


def wait_until_finished(client: Client, name: str, timeout: float) -> dict[str, Any] | None:
    """The execution once it has ended, or None if it still runs after ``timeout`` seconds."""
    try:
        return client.wait(name, timeout=timeout, poll_seconds=0.05)
    except TimeoutError:
        return None


@dataclass
class MovedAside:
    """One event the orchestrators moved aside: where it was, why it was moved, and what it holds."""

    id: str  # its entry id in the malformed stream
    entry_id: str  # its entry id on the event stream it came from
    reason: str
    delivery_count: int
    execution: str | None  # the execution it names, when it is an event at all
    event_type: str | None
    fields: dict[str, str]  # the entry's fields, as they were

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "event": json_object(self.fields.get(EVENT_FIELD))}


class MovedAsideEvents:
    """The events moved aside from one installation's event stream.

    Args:
        redis_client: the connection.
        settings: the prefix.
    """

    def __init__(self, redis_client: redis.Redis, settings: Settings) -> None:
        self.redis = redis_client
        self.keys = Keys(settings.prefix)

    def list(self, limit: int | None = None) -> list[MovedAside]:
        """The moved-aside events, oldest first (entries moved aside from a source queue are not events)."""
        found: list[MovedAside] = []
        start = "-"
        while limit is None or len(found) < limit:
            chunk = self.redis.xrange(self.keys.malformed, min=start, count=READ_BATCH)
            found += [event for event in map(self.event_of, chunk) if event is not None]
            if len(chunk) < READ_BATCH:
                break
            start = "(" + lossless_text(chunk[-1][0])
        return found if limit is None else found[:limit]

    def show(self, moved_id: str) -> MovedAside | None:
        """The moved-aside event with this id, or None."""
        try:
            entries = self.redis.xrange(self.keys.malformed, moved_id, moved_id)
        except redis.ResponseError:  # not a stream id at all: no entry has it
            return None
        return self.event_of(entries[0]) if entries else None

    def replay(self, moved_ids: list[str] | None = None) -> list[str]:
        """Put moved-aside events back on the event stream, unchanged; returns the ids replayed.

        Args:
            moved_ids: the events to replay; None replays every one.
        """
        ids = [event.id for event in self.list()] if moved_ids is None else moved_ids
        return [moved_id for moved_id in ids if self.replay_one(moved_id)]

    def replay_one(self, moved_id: str) -> bool:
        """Move one event back to the event stream; False when it is gone (or was never an event).

        The move is one transaction on the watched malformed stream, so two people replaying
        one event at once send it once (the other finds it gone). A stream that keeps
        changing under it raises :class:`~orchestrator.runtime.optimistic.CommitConflict`.
        """
        malformed = self.keys.malformed

        with self.redis.pipeline(transaction=True) as pipe:

            def attempt(_: Attempt) -> bool | Lost:
                try:
                    pipe.watch(malformed)
                    try:
                        entries = pipe.xrange(malformed, moved_id, moved_id)
                    except redis.ResponseError:
                        return False
                    event = self.event_of(entries[0]) if entries else None
                    if event is None:
                        return False
                    pipe.multi()
                    pipe.xadd(self.keys.events, event.fields)
                    pipe.xdel(malformed, moved_id)
                    pipe.execute()
                    return True
                except redis.WatchError:
                    return watched_key_changed(malformed)  # maybe another event moved aside: look again

            return commit_optimistically(f"the replay of moved-aside event {moved_id}", attempt)

    def event_of(self, entry: tuple[Any, dict[Any, Any]]) -> MovedAside | None:
        """The moved-aside event an entry of the malformed stream holds; None for a source-queue entry."""
        entry_id, raw = entry
        values = {lossless_text(k): lossless_text(v) for k, v in raw.items()}
        if values.get("stream") != self.keys.events:
            return None
        original = json_object(values.get("fields", ""))
        fields = {str(k): v for k, v in original.items() if isinstance(v, str)}
        event = json_object(fields.get(EVENT_FIELD))
        count = values.get("receive_count", "1")
        execution, event_type = event.get("execution"), event.get("type")
        return MovedAside(
            id=lossless_text(entry_id),
            entry_id=values.get("id", ""),
            reason=values.get("reason", ""),
            delivery_count=int(count) if count.isdigit() else 1,
            execution=execution if isinstance(execution, str) else None,
            event_type=event_type if isinstance(event_type, str) else None,
            fields=fields,
        )
