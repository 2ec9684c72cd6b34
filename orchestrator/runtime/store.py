"""Executions at rest, and the one-script commit of a batch of transitions.

A :class:`Commit` collects what a batch of transitions writes (execution blobs, history,
timers, RQ jobs, notifications, queue messages, acknowledgements) together with the
preconditions that make it safe to apply (each execution is still at the version it was
read at; each consumed stream entry is still pending). ``lua/commit.lua`` checks every
precondition and then applies every write, in one call: a batch lands whole or not at all.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import redis
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from orchestrator.runtime.keys import GROUP, RQ_QUEUES, Keys
from orchestrator.tasks import Task

TASK_ENTRY_POINT = "worker.entry.run_tasks"
TASKS_PER_JOB = 50
JOB_TIMEOUT_SECONDS = 900
FAILED_JOB_TTL_SECONDS = 86_400


def load_script(redis_client: redis.Redis, name: str) -> Any:
    """The Lua script ``lua/<name>.lua`` registered on ``redis_client`` (EVALSHA, EVAL on a miss)."""
    source = resources.files("orchestrator.runtime").joinpath("lua", f"{name}.lua").read_text()
    return redis_client.register_script(source)


class CommitRefused(redis.ResponseError):
    """A batch that can never apply as it is: a key it writes holds another type of value."""


@dataclass
class Conflict:
    """Why a commit was refused: an execution moved on, or a consumed entry was already acked."""

    kind: str  # "version" or "acked"
    key: str
    entry_id: str | None = None


@dataclass
class Commit:
    """Everything one batch of transitions writes, and what must still hold for it to apply."""

    keys: Keys
    connection: redis.Redis  # rq's Job wants one, though building job fields does no I/O
    _key_index: dict[str, int] = field(default_factory=dict)
    _ops: list[Any] = field(default_factory=list)

    def _k(self, key: str) -> int:
        # Lua reads keys from KEYS by index, so a key used twice is sent once.
        if key not in self._key_index:
            self._key_index[key] = len(self._key_index) + 1
        return self._key_index[key]

    @property
    def empty(self) -> bool:
        return not self._ops

    def expect_version(self, name: str, version: int) -> None:
        """Apply only if execution ``name`` is still at ``version`` (0: does not exist yet)."""
        self._ops += ["version", self._k(self.keys.execution(name)), version]

    def expect_pending(self, stream: str, entry_id: str) -> None:
        """Apply only if ``entry_id`` of ``stream`` was not acknowledged by someone else."""
        self._ops += ["pending", self._k(stream), entry_id]

    def save_execution(self, execution: dict[str, Any], version: int) -> None:
        self._ops += ["exec", self._k(self.keys.execution(execution["name"])), version, json.dumps(execution)]

    def append_history(self, name: str, events: list[dict[str, Any]]) -> None:
        if events:
            self._ops += ["rpush", self._k(self.keys.history(name)), len(events)]
            self._ops += [json.dumps(event) for event in events]

    def index_status(self, execution: dict[str, Any], previous: str | None) -> None:
        """Move the execution between the per-status indexes (and into the index when new)."""
        name, status, started = execution["name"], execution["status"], execution["startDate"]
        if previous == status:
            return
        if previous is None:
            self._ops += ["zadd", self._k(self.keys.executions), started, name]
        else:
            self._ops += ["zrem", self._k(self.keys.status(previous)), name]
        self._ops += ["zadd", self._k(self.keys.status(status)), started, name]

    def add_timer(self, due: float, event: dict[str, Any]) -> None:
        self._ops += ["zadd", self._k(self.keys.timers), repr(due), json.dumps(event, sort_keys=True)]

    def enqueue_tasks(self, tasks: list[Task]) -> None:
        """Push the tasks as RQ jobs (several tasks per job), exactly as ``Queue.enqueue_job`` would."""
        for start in range(0, len(tasks), TASKS_PER_JOB):
            job_id, fields = rq_job_fields(tasks[start : start + TASKS_PER_JOB], self.keys, self.connection)
            flat = [item for pair in fields.items() for item in pair]
            self._ops += ["hset", self._k(Keys.rq_job(job_id)), len(fields), *flat]
            self._ops += ["rpush", self._k(self.keys.task_queue), 1, job_id]
        if tasks:
            self._ops += ["sadd", self._k(RQ_QUEUES), self.keys.task_queue]

    def publish(self, topic: str, envelope: dict[str, Any], stream_length: int) -> None:
        """PUBLISH the envelope on the topic's channel and append it to the topic's capped log."""
        message = json.dumps(envelope)
        self._ops += ["publish", self.keys.topic(topic), message]
        self._ops += ["xadd", self._k(self.keys.topic_log(topic)), stream_length, 1, "message", message]

    def add_stream_entry(self, stream: str, fields: dict[str, str], maxlen: int = 0) -> None:
        flat = [item for pair in fields.items() for item in pair]
        self._ops += ["xadd", self._k(stream), maxlen, len(fields), *flat]

    def ack(self, stream: str, entry_id: str) -> None:
        self._ops += ["ack", self._k(stream), entry_id]

    def arguments(self) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV for ``commit.lua``."""
        return list(self._key_index), [GROUP, *self._ops]


def rq_job_fields(tasks: list[Task], keys: Keys, connection: redis.Redis) -> tuple[str, dict[str, Any]]:
    """The id and hash fields of an RQ job that runs ``tasks`` on a worker, as rq 2.x stores them."""
    job = Job.create(
        func=TASK_ENTRY_POINT,
        args=[tasks, keys.events],
        id=str(uuid.uuid4()),
        connection=connection,
        serializer=JSONSerializer,
        result_ttl=0,
        failure_ttl=FAILED_JOB_TTL_SECONDS,
        timeout=JOB_TIMEOUT_SECONDS,
        description=f"{TASK_ENTRY_POINT}({len(tasks)} task(s))",
        status=JobStatus.QUEUED,
    )
    job.origin = keys.task_queue_name
    job.enqueued_at = job.created_at
    fields = job.to_dict()
    fields["status"] = JobStatus.QUEUED.value
    return job.id, fields


class Store:
    """Loads execution blobs and applies :class:`Commit` batches on one Redis connection."""

    def __init__(self, redis_client: redis.Redis, keys: Keys) -> None:
        self.redis = redis_client
        self.keys = keys
        self._commit_script = load_script(redis_client, "commit")

    def new_commit(self) -> Commit:
        return Commit(self.keys, self.redis)

    def load(self, names: list[str]) -> dict[str, tuple[dict[str, Any] | None, int]]:
        """Each execution's blob and version (``(None, 0)`` when it does not exist), in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.hmget(self.keys.execution(name), ["execution", "version"])
        loaded = {}
        for name, (blob, version) in zip(names, pipe.execute(), strict=True):
            loaded[name] = (json.loads(blob), int(version)) if blob is not None else (None, 0)
        return loaded

    def commit(self, batch: Commit) -> list[Conflict]:
        """Apply ``batch`` whole; an empty list means it landed, otherwise why it did not."""
        if batch.empty:
            return []
        keys, argv = batch.arguments()
        reply = self._commit_script(keys=keys, args=argv)
        conflicts = parse_conflicts([item.decode() if isinstance(item, bytes) else item for item in reply])
        wrong = [c.key for c in conflicts if c.kind == "wrongtype"]
        if wrong:
            raise CommitRefused(f"key(s) hold the wrong type of value: {', '.join(wrong)}")
        return conflicts


def parse_conflicts(reply: list[str]) -> list[Conflict]:
    conflicts, i = [], 0
    while i < len(reply):
        if reply[i] in ("version", "wrongtype"):
            conflicts.append(Conflict(reply[i], reply[i + 1]))
            i += 2
        else:
            conflicts.append(Conflict("acked", reply[i + 1], reply[i + 2]))
            i += 3
    return conflicts
