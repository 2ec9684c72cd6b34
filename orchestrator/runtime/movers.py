"""What will move a running execution on: the things that answer the tokens it waits on.

A RUNNING execution waits on tokens (``execution["tokens"]``: token -> [thread id, kind]).
Something answers a token when it holds it on its way to the orchestrators:

- an RQ job in the task queue or in a worker's claimed list (of a worker in ``{p}:workers``)
  with a task for the token;
- a task's lease for the token in the leases zset (the TaskFailed its worker's silence turns
  into), or a member of the timers zset for it: a TimerFired event, or a lease stored there
  by an earlier version (a ready-made TaskFailed event);
- an entry on the events stream (unread, or read and not yet committed) for the token;
- a nested execution a ``.sync`` task waits on: its StartExecution event on the events stream,
  then the running child itself (its ``parentTask``), whose end reports to the task.

A StopExecution entry on the events stream answers the whole execution.

A token travels one way through these places: queue, claimed list, lease, events stream,
applied (the execution's version moves on). :func:`find_movers` reads them in that order, so
a token it misses while it moves was applied by the time the last place is read, and the
execution's version, read again after the scan, tells.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

from orchestrator.nested_executions import PARENT_TASK, START_EXECUTION_EVENT
from orchestrator.protocol.decoding import loads, lossless_text
from orchestrator.protocol.keys import EVENT_FIELD
from orchestrator.runtime.keys import Keys

BATCH = 1000
TIMER_KINDS = frozenset({"execution-timeout", "wait", "retry", "timeout", "heartbeat"})
# A callback task holds a "dispatch" token (the job that hands its token out) and a "task"
# token (the one SendTaskSuccess answers); only its timers bound how long it may wait.
DISPATCH = "dispatch"


@dataclass
class Movers:
    """Every token something holds, by execution, and the executions a stop request names."""

    tokens: set[tuple[str, str]] = field(default_factory=set)
    stopping: set[str] = field(default_factory=set)

    def answers(self, name: str, token: str) -> bool:
        return (name, token) in self.tokens


@dataclass
class Waiting:
    """Why a running execution may wait forever: the states nothing answers."""

    stuck: list[str] = field(default_factory=list)  # "state 'S' (token t, task)"
    callbacks: list[str] = field(default_factory=list)  # callback waits with no timer

    @property
    def moves(self) -> bool:
        return not self.stuck and not self.callbacks


def find_movers(redis_client: redis.Redis, keys: Keys, names: set[str]) -> Movers:
    """Every token of the executions ``names`` that something holds, read upstream first."""
    movers = Movers()
    job_ids = list_items(redis_client, keys.task_queue)
    # A worker is in the workers set before it claims a job and leaves it only once its claimed
    # list is empty, so the set names every claimed list (no SCAN of key names needed).
    for worker in sorted(set_members(redis_client, keys.workers)):
        job_ids += list_items(redis_client, keys.claimed(worker))
    for task in job_tasks(redis_client, job_ids):
        add_token(movers, names, task)
    for member, _ in zscan(redis_client, keys.leases):
        add_token(movers, names, json_object(member))
    for member, _ in zscan(redis_client, keys.timers):
        add_token(movers, names, json_object(member))
    for fields in stream_entries(redis_client, keys.events):
        event = json_object(fields.get(EVENT_FIELD.encode(), b""))
        if event.get("type") == "StopExecution" and event.get("execution") in names:
            movers.stopping.add(event["execution"])
        elif event.get("type") == START_EXECUTION_EVENT:
            add_token(movers, names, {"execution": event.get("parent"), "token": event.get("token")})
        else:
            add_token(movers, names, event)
    return movers


def add_waited_on_children(movers: Movers, names: set[str], running: dict[str, dict[str, Any]]) -> None:
    """Count each running child as what moves the .sync task waiting on it (its ``parentTask``)."""
    for execution in running.values():
        add_token(movers, names, execution.get(PARENT_TASK))


def waiting(execution: dict[str, Any], movers: Movers) -> Waiting:
    """Which of a running execution's waits nothing answers (empty when every one is answered)."""
    name = execution["name"]
    verdict = Waiting()
    if name in movers.stopping:
        return verdict
    tokens: dict[str, Any] = execution.get("tokens") or {}
    by_thread: dict[Any, list[tuple[str, str]]] = {}
    for token, owner in tokens.items():
        thread, kind = owner if isinstance(owner, list) and len(owner) == 2 else (None, "?")
        if kind == "execution-timeout" and movers.answers(name, token):
            return verdict  # the execution's own TimeoutSeconds ends it, whatever else waits
        by_thread.setdefault(thread, []).append((token, str(kind)))
    if not any(thread is not None for thread in by_thread):
        verdict.stuck.append("no state (no state waits on a token)")
    threads = execution.get("threads") or {}
    for thread, held in by_thread.items():
        if thread is None:
            continue  # the execution's own timeout, unanswered: something else must move it
        if any(movers.answers(name, token) for token, _ in held):
            continue
        state = threads.get(thread, {}).get("state") if isinstance(threads, dict) else None
        described = f"state {state!r} ({', '.join(f'token {t}: {k}' for t, k in held)})"
        kinds = {kind for _, kind in held}
        if DISPATCH in kinds and not kinds & TIMER_KINDS:
            verdict.callbacks.append(described)
        else:
            verdict.stuck.append(described)
    return verdict


def add_token(movers: Movers, names: set[str], item: Any) -> None:
    if not isinstance(item, dict):
        return
    name, token = item.get("execution"), item.get("token")
    if isinstance(name, str) and isinstance(token, str) and name in names:
        movers.tokens.add((name, token))


def job_tasks(redis_client: redis.Redis, job_ids: list[str]) -> Iterator[Any]:
    """The tasks the RQ jobs ``job_ids`` carry (a job gone or unreadable carries none)."""
    for start in range(0, len(job_ids), BATCH):
        pipe = redis_client.pipeline(transaction=False)
        for job_id in job_ids[start : start + BATCH]:
            pipe.hget(Keys.rq_job(job_id), "data")
        for data in pipe.execute(raise_on_error=False):
            yield from tasks_of_job_data(data)


def tasks_of_job_data(data: Any) -> list[Any]:
    """The tasks in a job's ``data`` ([function, instance, [tasks, events key], kwargs]), or none."""
    if not isinstance(data, bytes):
        return []
    try:
        decoded = loads(data)
    except ValueError:
        try:
            decoded = loads(zlib.decompress(data))  # rq compresses the data it saves itself
        except (ValueError, zlib.error):
            return []
    if isinstance(decoded, list) and len(decoded) > 2 and isinstance(decoded[2], list) and decoded[2]:
        tasks = decoded[2][0]
        return tasks if isinstance(tasks, list) else []
    return []


def json_object(raw: Any) -> dict[str, Any]:
    """``raw`` parsed as a JSON object; anything else (not JSON, not an object) is an empty one."""
    if not isinstance(raw, bytes | str):
        return {}
    try:
        value = loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def list_items(redis_client: redis.Redis, key: str) -> list[str]:
    """A list's items in bounded reads; a key that is not a list has none."""
    items: list[str] = []
    start = 0
    while True:
        try:
            chunk = redis_client.lrange(key, start, start + BATCH - 1)
        except redis.ResponseError:
            return items
        items += [lossless_text(item) for item in chunk]
        if len(chunk) < BATCH:
            return items
        start += BATCH


def set_members(redis_client: redis.Redis, key: str) -> list[str]:
    """A set's members; a key that is not a set has none."""
    try:
        return [lossless_text(member) for member in redis_client.smembers(key)]
    except redis.ResponseError:
        return []


def zscan(redis_client: redis.Redis, key: str) -> Iterator[tuple[bytes, float]]:
    """A sorted set's members in bounded reads; a key that is not a sorted set has none."""
    try:
        yield from redis_client.zscan_iter(key, count=BATCH)
    except redis.ResponseError:
        return


def stream_entries(redis_client: redis.Redis, key: str) -> Iterator[dict[bytes, bytes]]:
    """A stream's entries' fields in bounded reads, oldest first; a key that is not a stream has none."""
    start = "-"
    while True:
        try:
            chunk = redis_client.xrange(key, min=start, count=BATCH)
        except redis.ResponseError:
            return
        for _, fields in chunk:
            yield fields
        if len(chunk) < BATCH:
            return
        start = "(" + lossless_text(chunk[-1][0])


def glob_escape(text: str) -> str:
    """``text`` with SCAN's glob characters escaped, so a prefix matches only itself."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)
