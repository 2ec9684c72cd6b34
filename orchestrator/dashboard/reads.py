"""The dashboard's reads: a page of executions, and the overview's numbers.

Executions are indexed by start time (``{p}:executions``, and one index per status), not by
state machine or name, so a filtered page walks the index newest first in batches and keeps
what matches. The name prefix is matched on the index alone; the machine is read from the
executions of each batch (one pipelined round trip). Each page stops after ``SCAN_LIMIT``
index entries, matched or not, and hands back a cursor to go on from, so no page costs more
than that whatever the filter and however many executions there are (bench/dashboard.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rq import Queue, Worker
from rq.serializers import JSONSerializer

from orchestrator.runtime import execution_index, heartbeats
from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import STATUSES
from orchestrator.runtime.queues import Queues

PAGE_SIZE = 50
SCAN_BATCH = 500
SCAN_LIMIT = 5000
RECENT_FOR_MACHINES = 200
"""While the per-machine indexes are first built (after an upgrade), the overview counts each
machine's executions among this many latest ones instead."""


@dataclass(frozen=True)
class Cursor:
    """Where a page of the executions list goes on from: the last entry it looked at."""

    score: float
    name: str

    def text(self) -> str:
        return f"{self.score!r}:{self.name}"

    @classmethod
    def parse(cls, text: str | None) -> Cursor | None:
        """The cursor of a ``before`` query parameter; None for none or a malformed one."""
        if not text or ":" not in text:
            return None
        score, _, name = text.partition(":")
        try:
            return cls(float(score), name)
        except ValueError:
            return None


@dataclass(frozen=True)
class ExecutionsPage:
    rows: list[dict[str, Any]]
    next: Cursor | None
    scanned: int


def executions_page(
    client: Client,
    *,
    machine: str | None = None,
    status: str | None = None,
    prefix: str | None = None,
    before: Cursor | None = None,
    page_size: int = PAGE_SIZE,
) -> ExecutionsPage:
    """Up to ``page_size`` executions, newest first, that match every filter given.

    ``next`` is None when the index has nothing older; otherwise the next page goes on from it
    (also when this one stopped at ``SCAN_LIMIT`` entries with fewer rows than asked).
    """
    rows: list[dict[str, Any]] = []
    cursor, scanned = before, 0
    while scanned < SCAN_LIMIT:
        want = min(SCAN_BATCH, SCAN_LIMIT - scanned)
        after = (cursor.score, cursor.name) if cursor else None
        if machine and execution_index.is_built(client.redis, client.keys):  # only its executions
            entries = execution_index.newest(client.redis, client.keys, machine, status, after, want)
        else:
            entries = client.execution_index(status, after, want)
        scanned += len(entries)
        matching = [(name, score) for name, score in entries if not prefix or name.startswith(prefix)]
        # Without a machine to check, every candidate is a row: load no more than the page needs.
        candidates = matching if machine else matching[: page_size - len(rows)]
        loaded = (
            _of_machine(client, candidates, machine)
            if machine
            else client.describe_many([name for name, _ in candidates])
        )
        for name, score in candidates:
            described = loaded.get(name)
            if described is None or (machine and described["stateMachine"] != machine):
                continue
            if status and described["status"] != status:  # an entry a status change left behind
                continue
            rows.append(described)
            if len(rows) == page_size:
                return ExecutionsPage(rows, Cursor(score, name), scanned)
        if len(entries) < want:
            return ExecutionsPage(rows, None, scanned)
        last_name, last_score = candidates[-1] if len(candidates) < len(matching) else entries[-1]
        cursor = Cursor(last_score, last_name)
    return ExecutionsPage(rows, cursor, scanned)


def _of_machine(client: Client, entries: list[tuple[str, float]], machine: str) -> dict[str, dict[str, Any]]:
    """The executions of ``entries`` that run ``machine``, as DescribeExecution shows them.

    Most executions of a batch are another machine's, so each stored execution is first read
    as its raw JSON text and only those whose text holds the machine's name at all (names are
    usually plain ASCII, which JSON keeps verbatim) are decoded and checked.
    """
    if not entries:
        return {}
    if not machine.isascii() or not machine.isprintable() or '"' in machine or "\\" in machine:
        # JSON may escape such a name: no shortcut, decode them all.
        return client.describe_many([name for name, _ in entries])
    pipe = client.redis.pipeline(transaction=False)
    for name, _ in entries:
        pipe.hget(client.keys.execution(name), "execution")
    needle = machine.encode()
    maybe = [name for (name, _), raw in zip(entries, pipe.execute(), strict=True) if raw and needle in raw]
    return client.describe_many(maybe) if maybe else {}


def overview(client: Client, now: float | None = None) -> dict[str, Any]:
    """The numbers of the overview page: executions, machines, queues, workers, orchestrators, topics."""
    connection, keys, settings = client.redis, client.keys, client.settings
    now = client.clock() if now is None else now
    pipe = connection.pipeline(transaction=False)
    for status in STATUSES:
        pipe.zcard(keys.status(status))
    pipe.hkeys(keys.machines)
    *counts, machine_keys = pipe.execute()
    machine_names = sorted(name.decode() for name in machine_keys)
    by_machine, sample = _by_machine(client, machine_names)
    return {
        "executions": dict(zip(STATUSES, counts, strict=True)),
        "machines": dict(sorted(by_machine.items())),
        "machines_sample": sample,
        "queues": _queues(client, now),
        "workers": _workers(client, now),
        "orchestrators": heartbeats.alive(connection, keys),
        "topics": _topics(client, [settings.topic], now),
        "at": now,
    }


def _by_machine(client: Client, machine_names: list[str]) -> tuple[dict[str, dict[str, int]], int | None]:
    """Each machine's executions by status, and None; or, while the per-machine indexes are
    first built, the counts among the latest ``RECENT_FOR_MACHINES`` executions and how many
    those were.

    The exact counts are one pipeline of ZCARDs of the per-machine status indexes, however
    many executions are stored. They are the registered machines': the executions of one
    deleted since are in the totals by status only.
    """
    connection, keys = client.redis, client.keys
    if not execution_index.is_built(connection, keys):
        recent = client.list_executions(limit=RECENT_FOR_MACHINES)
        sampled = {name: dict.fromkeys(STATUSES, 0) for name in machine_names}
        for execution in recent:
            counts = sampled.setdefault(execution["stateMachine"], dict.fromkeys(STATUSES, 0))
            counts[execution["status"]] += 1
        return dict(sorted(sampled.items())), len(recent)
    pipe = connection.pipeline(transaction=False)
    for name in machine_names:
        for status in STATUSES:
            pipe.zcard(execution_index.status_key(keys, name, status))
    counts = iter(pipe.execute())
    exact = {name: {status: int(next(counts)) for status in STATUSES} for name in machine_names}
    return exact, None


def _queues(client: Client, now: float) -> list[dict[str, Any]]:
    queues = Queues(client.redis, client.settings)
    rows = []
    for name in queues.names():
        depth = queues.depth(name)
        pipe = client.redis.pipeline(transaction=False)
        pipe.xlen(client.keys.dead_letters(name))
        pipe.xrange(client.keys.queue(name), count=1)
        dead, oldest = pipe.execute()
        age = max(0.0, now - int(oldest[0][0].decode().split("-")[0]) / 1000) if oldest else None
        rows.append(
            {
                "name": name,
                "visible": depth.visible,
                "in_flight": depth.in_flight,
                "dead_letters": dead,
                "oldest_age": age,
            }
        )
    return rows


def _workers(client: Client, now: float) -> list[dict[str, Any]]:
    task_queue = Queue(client.keys.task_queue_name, connection=client.redis, serializer=JSONSerializer)
    rows = []
    for worker in Worker.all(queue=task_queue):
        beat = worker.last_heartbeat.timestamp() if worker.last_heartbeat else None
        rows.append(
            {
                "name": worker.name,
                "state": str(worker.get_state()),
                "busy": str(worker.get_state()) == "busy",
                "last_heartbeat_age": None if beat is None else max(0.0, now - beat),
            }
        )
    return sorted(rows, key=lambda row: row["name"])


def _topics(client: Client, names: list[str], now: float) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        pipe = client.redis.pipeline(transaction=False)
        pipe.xlen(client.keys.topic_log(name))
        pipe.xrevrange(client.keys.topic_log(name), count=1)
        length, last = pipe.execute()
        age = max(0.0, now - int(last[0][0].decode().split("-")[0]) / 1000) if last else None
        rows.append({"name": name, "kept": length, "last_age": age})
    return rows
