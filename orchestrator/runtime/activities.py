"""Activities: Step Functions' own pull model, where workers anywhere poll for a Task's work.

A Task state whose ``Resource`` is an activity ARN makes the core emit a ``RunActivity``
action; the commit that enters the state appends ``{"execution", "token", "sealed", "input"}`` to the
activity's stream (see ``runtime.transitions``). A worker's GetActivityTask takes the oldest
entry through the stream's consumer group and answers with the token and the input; the
worker answers with SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat on that token,
which go the callback path (``runtime.callbacks``) like any ``.waitForTaskToken`` answer.

Nothing is lost between the stream and the worker without a trace: an entry is read into
the group's pending list and acknowledged (and deleted) only once it is about to be handed
over; one left pending by a ``serve`` that died in between is claimed again by the next poll
after ``RECLAIM_IDLE_SECONDS`` (whichever poll deletes it hands it over: never both).
Handing a task over appends ``{"type": "ActivityStarted", "execution", "token", "workerName"}``
to the orchestrators' event stream, as an answer would be: the execution records
ActivityStarted with the worker's name then, fenced by the token, and its HeartbeatSeconds
start counting (a task no worker takes shows no ActivityStarted; TimeoutSeconds ends it).
Once handed over, a task whose worker dies is the state's business, as on AWS: its
HeartbeatSeconds / TimeoutSeconds end it (States.HeartbeatTimeout, States.Timeout). An
entry whose execution no longer waits for its token (it timed out, was stopped, or moved on)
is skipped, so no worker is handed work nobody will accept.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis

from orchestrator.asl.task_state import ACTIVITY_STARTED
from orchestrator.protocol.decoding import loads
from orchestrator.protocol.keys import EVENT_FIELD
from orchestrator.runtime.blocking_reads import BLOCK_SLICE_SECONDS, blocking_reader
from orchestrator.runtime.callbacks import CALLBACK_KIND
from orchestrator.runtime.keys import ACTIVITY_TASK_FIELD, Keys
from orchestrator.settings import Settings

POLLERS = "pollers"
"""The consumer group GetActivityTask reads an activity's stream through."""
RECLAIM_IDLE_SECONDS = 30.0
"""How long an entry read but never acknowledged waits before another poll takes it (its reader died)."""
POLLER_CLIENT_NAME = "redstep-activity-poll"
"""How GetActivityTask's connections show in Redis's CLIENT LIST."""


class ActivityDeleted(LookupError):
    """The activity was deleted while a poll waited on it (AWS: ActivityDoesNotExist)."""


@dataclass(frozen=True)
class ActivityTask:
    """What GetActivityTask hands a worker."""

    execution: str
    token: str  # sealed: what SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat take
    input: Any


class Activities:
    """The activities that exist (CreateActivity, DescribeActivity, ListActivities, DeleteActivity)."""

    def __init__(self, redis_client: redis.Redis, keys: Keys) -> None:
        self.redis = redis_client
        self.keys = keys

    def create(self, name: str, now: float) -> float:
        """Create ``name`` unless it exists; its creation date either way (CreateActivity is idempotent)."""
        self.redis.hsetnx(self.keys.activities, name, json.dumps({"creationDate": now}))
        ensure_pollers(self.redis, self.keys.activity_tasks(name))
        created = self.creation_date(name)
        return now if created is None else created

    def creation_date(self, name: str) -> float | None:
        """When ``name`` was created; None when there is no such activity."""
        raw = self.redis.hget(self.keys.activities, name)
        if raw is None:
            return None
        try:
            return float(loads(raw)["creationDate"])
        except (ValueError, KeyError, TypeError):
            return 0.0  # a damaged record still names an activity that exists

    def names(self) -> list[str]:
        """Every activity's name, sorted."""
        return sorted(name.decode() for name in self.redis.hkeys(self.keys.activities))

    def delete(self, name: str) -> None:
        """Forget ``name`` and the tasks waiting for it (their executions' timers still end them)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(self.keys.activities, name)
        pipe.delete(self.keys.activity_tasks(name))
        pipe.execute()


def ensure_pollers(redis_client: redis.Redis, stream: str) -> None:
    """Create the stream's consumer group (and the stream) unless it exists."""
    try:
        redis_client.xgroup_create(stream, POLLERS, id="0", mkstream=True)
    except redis.ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise


class TaskPoller:
    """GetActivityTask's long poll, on a connection of its own that blocks without holding a thread.

    Args:
        settings: the Redis URL and the key prefix.
        reclaim_idle_seconds: how long an entry read by a poll that never handed it over waits
            before this one takes it.
    """

    def __init__(self, settings: Settings, reclaim_idle_seconds: float = RECLAIM_IDLE_SECONDS) -> None:
        self.settings = settings
        self.reclaim_idle_ms = int(reclaim_idle_seconds * 1000)
        self.keys = Keys(settings.prefix)
        self.consumer = f"serve-{uuid.uuid4().hex[:12]}"
        self._redis: aioredis.Redis | None = None

    def connection(self) -> aioredis.Redis:
        # Made on first use, inside the server's event loop, which its connections belong to.
        if self._redis is None:
            self._redis = blocking_reader(self.settings, client_name=POLLER_CLIENT_NAME)
        return self._redis

    async def take(
        self, activity: str, wait_seconds: float, worker_name: str | None = None
    ) -> ActivityTask | None:
        """The oldest task of ``activity`` some execution still waits for; None after ``wait_seconds``.

        Handing a task over tells its execution that ``worker_name`` started it (ActivityStarted).

        Raises:
            ActivityDeleted: the activity was deleted meanwhile.
        """
        stream = self.keys.activity_tasks(activity)
        deadline = time.monotonic() + wait_seconds
        while True:
            entry = await self._reclaimed(stream)
            if entry is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                entry = await self._read(activity, stream, min(remaining, BLOCK_SLICE_SECONDS))
            if entry is None:
                continue
            entry_id, fields = entry
            task = await self._hand_over(stream, entry_id, fields, worker_name)
            if task is not None:
                return task

    async def _read(
        self, activity: str, stream: str, block_seconds: float
    ) -> tuple[bytes, dict[bytes, bytes]] | None:
        connection = self.connection()
        try:
            reply = await connection.xreadgroup(
                POLLERS, self.consumer, {stream: ">"}, count=1, block=max(1, int(block_seconds * 1000))
            )
        except redis.ResponseError as error:
            # NOGROUP: the stream or its group is missing; UNBLOCKED: it was deleted under the poll.
            if "NOGROUP" not in str(error) and "UNBLOCKED" not in str(error):
                raise
            if not await connection.hexists(self.keys.activities, activity):
                raise ActivityDeleted(activity) from None
            await _ensure_pollers_async(connection, stream)  # lost with Redis's data: made again
            return None
        if not reply or not reply[0][1]:
            return None
        entry_id, fields = reply[0][1][0]
        return entry_id, fields

    async def _reclaimed(self, stream: str) -> tuple[bytes, dict[bytes, bytes]] | None:
        try:
            reply = await self.connection().xautoclaim(
                stream, POLLERS, self.consumer, self.reclaim_idle_ms, "0-0", count=1
            )
        except redis.ResponseError:
            return None  # no stream or no group yet: nothing was left behind
        claimed = reply[1] if len(reply) > 1 else []
        for entry_id, fields in claimed:
            if fields:  # an entry deleted meanwhile is claimed without its fields
                return entry_id, fields
        return None

    async def _hand_over(
        self, stream: str, entry_id: bytes, fields: dict[bytes, bytes], worker_name: str | None
    ) -> ActivityTask | None:
        connection = self.connection()
        pipe = connection.pipeline(transaction=True)
        pipe.xack(stream, POLLERS, entry_id)
        pipe.xdel(stream, entry_id)
        _, deleted = await pipe.execute()
        if not deleted:
            return None  # another poll that reclaimed the entry handed it over first
        try:
            task = loads(fields[ACTIVITY_TASK_FIELD.encode()])
            execution, token, sealed = str(task["execution"]), str(task["token"]), str(task["sealed"])
        except (ValueError, KeyError, TypeError):
            return None  # not an entry the commit wrote: nobody can answer it
        blob = await connection.hget(self.keys.execution(execution), "execution")
        waiting = loads(blob).get("tokens", {}).get(token) if blob is not None else None
        if not waiting or waiting[1] != CALLBACK_KIND:
            return None  # the execution moved on (timed out, stopped, ended) without it
        # Sent before the worker has the token, so it reaches the stream ahead of any answer.
        await connection.xadd(self.keys.events, {EVENT_FIELD: started_event(execution, token, worker_name)})
        return ActivityTask(execution, sealed, task.get("input"))


def started_event(execution: str, token: str, worker_name: str | None) -> str:
    """The event that tells ``execution`` its activity task of ``token`` was taken by ``worker_name``."""
    event: dict[str, Any] = {"type": ACTIVITY_STARTED, "execution": execution, "token": token}
    if worker_name is not None:
        event["workerName"] = worker_name
    return json.dumps(event)


async def _ensure_pollers_async(connection: aioredis.Redis, stream: str) -> None:
    try:
        await connection.xgroup_create(stream, POLLERS, id="0", mkstream=True)
    except redis.ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise
