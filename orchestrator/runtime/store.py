"""Executions at rest, and the one-script commit of a batch of transitions.

A :class:`Commit` collects what a batch of transitions writes (execution blobs, history,
timers, RQ jobs, notifications, queue messages, acknowledgements) together with the
preconditions that make it safe to apply (each execution is still at the version it was
read at; each consumed stream entry is still pending). ``lua/commit.lua`` checks every
precondition and then applies every write, in one call: a batch lands whole or not at all.

The operations travel as one JSON array rather than as thousands of separate arguments:
redis-py packs each argument in Python, which cost the orchestrator a fifth of its time, while
the script decodes the array in C. Long values (execution blobs, history events, job data,
messages) travel as arguments of their own, named in the array by their index: inside a JSON
string every quote of theirs is escaped, and decoding those escapes took 1.9 of the ~5 ms Redis
spent on a commit of a hundred starts (bench/commit_batches.py measures a commit).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.connection import AbstractConnection

from orchestrator.protocol import json_text
from orchestrator.protocol.decoding import loads
from orchestrator.protocol.jobs import rq_job_fields
from orchestrator.protocol.keys import RQ_QUEUES
from orchestrator.protocol.metrics import flat, metrics_key
from orchestrator.protocol.scripts import send_evalsha
from orchestrator.protocol.tasks import Task
from orchestrator.runtime import execution_index
from orchestrator.runtime.keys import FINISHED_STATUSES, GROUP, Keys
from orchestrator.runtime.scripts import lua_script

TASKS_PER_JOB = 50
# A value at least this long travels as an argument of its own (ARGV[3..]), not in the JSON array.
LONG_VALUE = 64
COMMIT_ATTEMPTS = 5  # races a commit may lose (another process moved on first) before it gives up


@dataclass
class Conflict:
    """Why a commit was refused: an execution moved on, or a consumed entry was already acked."""

    kind: str  # "version" or "acked"; "wrongtype" or "invalid" when the batch can never apply
    key: str
    entry_id: str | None = None
    reason: str = ""


class CommitRefused(redis.ResponseError):
    """A batch that can never apply as it is: a key it writes holds another type of value, or a
    write's own arguments (a score, a count) would make Redis refuse it. Nothing was written.

    Attributes:
        keys: the keys the refused writes name.
    """

    def __init__(self, refusals: list[Conflict]) -> None:
        self.keys = [refusal.key for refusal in refusals]
        reasons = [
            f"{r.key} holds the wrong type of value" if r.kind == "wrongtype" else f"{r.key}: {r.reason}"
            for r in refusals
        ]
        super().__init__(f"the commit was refused, nothing written: {'; '.join(reasons)}")


@dataclass
class Commit:
    """Everything one batch of transitions writes, and what must still hold for it to apply."""

    keys: Keys
    connection: redis.Redis  # rq's Job wants one, though building job fields does no I/O
    _key_index: dict[str, int] = field(default_factory=dict)
    _ops: list[str | int] = field(default_factory=list)
    _long_values: list[str] = field(default_factory=list)  # ARGV[3..]; the ops name them by index
    counts: Counter[str] = field(default_factory=Counter)  # metrics: HINCRBY'd by the same script call

    def _k(self, key: str) -> str:
        # Lua reads keys from KEYS by index, so a key used twice is sent once.
        index = self._key_index.get(key)
        if index is None:
            index = self._key_index[key] = len(self._key_index) + 1
        return str(index)

    def _v(self, value: str) -> str | int:
        # A long value is sent as an argument of its own; the script reads ARGV[index] for it.
        if len(value) < LONG_VALUE:
            return value
        self._long_values.append(value)
        return len(self._long_values) + 2

    @property
    def empty(self) -> bool:
        return not self._ops

    def expect_version(self, name: str, version: int) -> None:
        """Apply only if execution ``name`` is still at ``version`` (0: does not exist yet)."""
        self._ops += ["version", self._k(self.keys.execution(name)), str(version)]

    def expect_pending(self, stream: str, entry_id: str) -> None:
        """Apply only if ``entry_id`` of ``stream`` was not acknowledged by someone else."""
        self._ops += ["pending", self._k(stream), entry_id]

    def save_execution(self, execution: dict[str, Any], version: int) -> None:
        key = self._k(self.keys.execution(execution["name"]))
        self._ops += ["exec", key, str(version), self._v(json_text.dumps(execution))]

    def append_history(self, name: str, events: list[dict[str, Any]]) -> None:
        if events:
            self._ops += ["rpush", self._k(self.keys.history(name)), str(len(events))]
            self._ops += [self._v(json_text.dumps(event)) for event in events]

    def index_status(self, execution: dict[str, Any], previous: str | None) -> None:
        """Move the execution between the per-status indexes (and into the index when new).

        A finished execution also enters the closed index, scored by its stop time, for the
        retention sweep; a redriven one leaves it, so it is never swept while it runs again.
        """
        # str() of a float is its repr: the score keeps every digit.
        name, status, started = execution["name"], execution["status"], str(execution["startDate"])
        if status in FINISHED_STATUSES:
            # Also when the status stays: a redrive can end at once as it ended before, later.
            stopped = execution.get("stopDate") or execution["startDate"]
            self._ops += ["zadd", self._k(self.keys.closed), str(stopped), name]
        elif previous in FINISHED_STATUSES:
            self._ops += ["zrem", self._k(self.keys.closed), name]
        # Each machine's own index too (runtime.execution_index), so listing one is cheap.
        for op, index, *args in execution_index.writes(self.keys, execution, previous):
            self._ops += [op, self._k(index), *args]
        if previous == status:
            return
        if previous is None:
            self._ops += ["zadd", self._k(self.keys.executions), started, name]
        else:
            self._ops += ["zrem", self._k(self.keys.status(previous)), name]
        self._ops += ["zadd", self._k(self.keys.status(status)), started, name]

    def add_timer(self, due: float, event: dict[str, Any]) -> None:
        member = self._v(json.dumps(event, sort_keys=True))
        self._ops += ["zadd", self._k(self.keys.timers), repr(due), member]

    def remove_timer(self, event: dict[str, Any]) -> None:
        """Take back a timer ``add_timer`` set (the member is the same JSON, keys sorted)."""
        self._ops += ["zrem", self._k(self.keys.timers), self._v(json.dumps(event, sort_keys=True))]

    def enqueue_tasks(self, tasks: list[Task]) -> None:
        """Push the tasks as RQ jobs (several tasks per job), exactly as ``Queue.enqueue_job`` would."""
        for batch in job_batches(tasks):
            job_id, fields = rq_job_fields(batch, self.keys)
            flat = [item for pair in fields.items() for item in pair]
            values = [self._v(str(item)) for item in flat]
            self._ops += ["hset", self._k(Keys.rq_job(job_id)), str(len(fields)), *values]
            self._ops += ["rpush", self._k(self.keys.task_queue), "1", job_id]
        if tasks:
            self._ops += ["sadd", self._k(RQ_QUEUES), self.keys.task_queue]

    def publish(self, topic: str, envelope: dict[str, Any], stream_length: int) -> None:
        """PUBLISH the envelope on the topic's channel and append it to the topic's capped log."""
        message = self._v(json_text.dumps(envelope))
        self._ops += ["publish", self.keys.topic(topic), message]
        self._ops += [
            "xadd",
            self._k(self.keys.topic_log(topic)),
            str(stream_length),
            "1",
            "message",
            message,
        ]

    def add_stream_entry(self, stream: str, fields: dict[str, str], maxlen: int = 0) -> None:
        flat = [self._v(str(item)) for pair in fields.items() for item in pair]
        self._ops += ["xadd", self._k(stream), str(maxlen), str(len(fields)), *flat]

    def ack(self, stream: str, entry_id: str) -> None:
        self._ops += ["ack", self._k(stream), entry_id]

    def expire(self, key: str, seconds: int) -> None:
        """Let ``key`` (as this commit leaves it) live ``seconds`` more."""
        self._ops += ["expire", self._k(key), str(seconds)]

    def arguments(self) -> tuple[list[str], list[str]]:
        """KEYS and ARGV for ``commit.lua``: the group, every operation as one JSON array, the long values."""
        if pairs := flat(self.counts):  # metrics: one hincrby operation, last
            self._ops += ["hincrby", self._k(metrics_key(self.keys.prefix)), str(len(pairs) // 2), *pairs]
            self.counts.clear()
        return list(self._key_index), [GROUP, json_text.dumps(self._ops), *self._long_values]


def job_batches(tasks: list[Task]) -> list[list[Task]]:
    """The tasks split into jobs of at most TASKS_PER_JOB, no two tasks of one execution in a job.

    A job runs its tasks one after another on one worker, so two tasks of one execution
    (Parallel branches, Map iterations) in one job could never run at the same time.
    """
    rounds: list[list[Task]] = []
    seen: dict[str, int] = {}
    for task in tasks:
        index = seen.get(task["execution"], 0)
        seen[task["execution"]] = index + 1
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(task)
    return [r[start : start + TASKS_PER_JOB] for r in rounds for start in range(0, len(r), TASKS_PER_JOB)]


class KnownExecutions:
    """Executions as this process last committed them, so their next transition skips the load.

    An entry is used only once Redis confirms the execution is still at the entry's version
    (an HGET of a short field instead of the blob and its JSON parse), and the commit checks
    the version again, so a stale entry costs a reload, never a wrong transition. An entry is
    handed out once (the core changes the execution in place) and remembered again after
    its commit lands.

    Args:
        capacity: the most executions kept; the longest unused go first.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._entries: dict[str, tuple[dict[str, Any], int]] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def version(self, name: str) -> int:
        return self._entries[name][1]

    def take(self, name: str) -> tuple[dict[str, Any], int]:
        return self._entries.pop(name)

    def remember(self, execution: dict[str, Any], version: int) -> None:
        """Keep ``execution`` as committed at ``version``; a finished one gets no more events."""
        name = execution["name"]
        self._entries.pop(name, None)
        if execution["status"] != "RUNNING":
            return
        self._entries[name] = (execution, version)
        if len(self._entries) > self.capacity:
            del self._entries[next(iter(self._entries))]


class Store:
    """Loads execution blobs and applies :class:`Commit` batches on one Redis connection."""

    def __init__(self, redis_client: redis.Redis, keys: Keys) -> None:
        self.redis = redis_client
        self.keys = keys
        self._commit_script = lua_script(redis_client, "commit")

    def new_commit(self) -> Commit:
        return Commit(self.keys, self.redis)

    def load(self, names: list[str]) -> dict[str, tuple[dict[str, Any] | None, int]]:
        """Each execution's blob and version (``(None, 0)`` when it does not exist), in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.hmget(self.keys.execution(name), ["execution", "version"])
        loaded = {}
        for name, (blob, version) in zip(names, pipe.execute(), strict=True):
            loaded[name] = (loads(blob), int(version)) if blob is not None else (None, 0)
        return loaded

    def load_known(
        self, names: list[str], known: KnownExecutions, trusted: bool = False
    ) -> dict[str, tuple[dict[str, Any] | None, int]]:
        """As :meth:`load`, taking from ``known`` each execution still at the version it holds.

        ``trusted`` takes the known executions without asking Redis for their versions: right
        when no other orchestrator commits, and otherwise only a lost race (the commit checks
        every version), which the caller retries with a fresh load.
        """
        cached = [name for name in names if name in known]
        if not cached:
            return self.load(names)
        others = [name for name in names if name not in known]
        if trusted:
            loaded = {name: known.take(name) for name in cached}
            if others:
                loaded.update(self.load(others))
            return loaded
        pipe = self.redis.pipeline(transaction=False)
        for name in cached:
            pipe.hget(self.keys.execution(name), "version")
        for name in others:
            pipe.hmget(self.keys.execution(name), ["execution", "version"])
        replies = pipe.execute()
        loaded, stale = {}, []
        for name, version in zip(cached, replies, strict=False):
            if version is not None and int(version) == known.version(name):
                loaded[name] = known.take(name)
            else:
                known.take(name)
                stale.append(name)
        for name, (blob, version) in zip(others, replies[len(cached) :], strict=True):
            loaded[name] = (loads(blob), int(version)) if blob is not None else (None, 0)
        if stale:
            loaded.update(self.load(stale))
        return loaded

    def commit(self, batch: Commit) -> list[Conflict]:
        """Apply ``batch`` whole; an empty list means it landed, otherwise why it did not."""
        if batch.empty:
            return []
        keys, argv = batch.arguments()
        return conflicts_in(self.apply_now(keys, argv))

    def send(self, batch: Commit) -> SentCommit:
        """Send ``batch`` on a connection of its own and return without waiting for Redis.

        The caller computes its next batch while Redis applies this one, and reads the outcome
        (:meth:`SentCommit.outcome`) before anything that depends on it.
        """
        if batch.empty:
            return SentCommit(self, [], [], None)
        keys, argv = batch.arguments()
        pool = self.redis.connection_pool
        connection = pool.get_connection()
        try:
            send_evalsha(connection, self._commit_script.sha, keys, argv)
        except BaseException:
            connection.disconnect()
            pool.release(connection)
            raise
        return SentCommit(self, keys, argv, connection)

    def apply_now(self, keys: list[str], argv: list[str]) -> list[Any]:
        """Run the commit script and wait; loads it first when Redis does not know it."""
        return list(self._commit_script(keys=keys, args=argv))


class SentCommit:
    """A commit sent to Redis whose reply has not been read yet."""

    def __init__(
        self, store: Store, keys: list[str], argv: list[str], connection: AbstractConnection | None
    ) -> None:
        self._store = store
        self._keys = keys
        self._argv = argv
        self._connection = connection

    def outcome(self) -> list[Conflict]:
        """Read the reply: an empty list means the batch landed, otherwise why it did not.

        Raises:
            CommitRefused: the batch can never apply as it is; nothing was written.
            redis.ResponseError: Redis refused the call.
            redis.ConnectionError, redis.TimeoutError: the reply was lost, so whether the batch
                landed is unknown (the synchronous way, with redis-py's retries, finds out).
        """
        connection, self._connection = self._connection, None
        if connection is None:
            return []
        pool = self._store.redis.connection_pool
        try:
            reply = connection.read_response()
        except redis.exceptions.NoScriptError:
            # Redis restarted or flushed its scripts: nothing ran; the script is loaded and sent again.
            pool.release(connection)
            reply = self._store.apply_now(self._keys, self._argv)
        except BaseException:
            connection.disconnect()
            pool.release(connection)
            raise
        else:
            pool.release(connection)
        return conflicts_in(reply)

    def abandon(self) -> None:
        """Leave the reply unread: its connection is closed rather than reused with a reply in it."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.disconnect()
            self._store.redis.connection_pool.release(connection)


def conflicts_in(reply: list[Any]) -> list[Conflict]:
    """What commit.lua's reply says: [] when the batch landed, else the conflicts that kept it out.

    Raises:
        CommitRefused: the batch can never apply as it is; nothing was written.
    """
    conflicts = parse_conflicts([item.decode() if isinstance(item, bytes) else item for item in reply])
    refusals = [c for c in conflicts if c.kind in ("wrongtype", "invalid")]
    if refusals:
        raise CommitRefused(refusals)
    return conflicts


def parse_conflicts(reply: list[str]) -> list[Conflict]:
    conflicts, i = [], 0
    while i < len(reply):
        if reply[i] in ("version", "wrongtype"):
            conflicts.append(Conflict(reply[i], reply[i + 1]))
            i += 2
        elif reply[i] == "invalid":
            conflicts.append(Conflict("invalid", reply[i + 1], reason=reply[i + 2]))
            i += 3
        else:
            conflicts.append(Conflict("acked", reply[i + 1], reply[i + 2]))
            i += 3
    return conflicts


def acked_elsewhere(conflicts: list[Conflict], entry_id: str) -> bool:
    """Whether ``conflicts`` say that ``entry_id`` was acknowledged by someone else."""
    return any(c.kind == "acked" and c.entry_id == entry_id for c in conflicts)
