"""RQ's bookkeeping of a job, recorded to go inside the worker's own script calls.

RQ writes its records of a job (the worker's state, the job's status, its execution and
registries) in transactions of their own, a dozen commands each that redis-py packs and whose
replies it parses one by one. A TaskWorker has RQ's own methods queue those writes on a pipeline
that is never sent, and passes them to the script it calls anyway at that moment: START before a
job runs (lua/start_tasks.lua), the reports after it (lua/append_reports.lua). Redis applies them
in that script (lua/recorded_commands.lua), atomically with it; RQ's code stays the one that
knows RQ's keys. For the start and success of a task job, which a worker records on every job,
TaskJobBookkeeping writes the same commands out directly, and a worker uses it only after it
agreed with RQ's methods on one of its jobs: RQ's methods stay the reference.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from redis import Redis
from redis.client import Pipeline
from redis.typing import EncodableT
from rq.executions import Execution, ExecutionRegistry
from rq.job import Job, JobStatus
from rq.utils import utcformat, utcparse
from rq.worker import WorkerStatus

from orchestrator.protocol import json_text

NO_COMMANDS: tuple[EncodableT, ...] = ("[]",)
# How far apart two readings of the clock may be for a word of RQ's and ours to agree (seconds).
CLOCK_READINGS_APART = 5.0
# A number above this is a reading of the clock (seconds since 1970, in 2001 or later), not a count.
CLOCK_READING_ABOVE = 1e9


def recorder(connection: Redis) -> Pipeline:
    """A pipeline for RQ's methods to queue writes on; :func:`recorded` takes them off unsent."""
    return connection.pipeline(transaction=False)


def recorded(pipeline: Pipeline) -> list[EncodableT]:
    """The commands queued on ``pipeline`` as the one argument recorded_commands.lua reads; emptied.

    A JSON array of commands, each an array of its words as text, the command's name first.
    One argument rather than each word as its own: redis-py encodes and packs every argument in
    Python, and a job's start alone records 72 words (53 against 14 us per call, packed).
    Each word's text is what redis-py would have sent: a float's repr, an int's digits, an
    enum's value (RQ's states are str enums), bytes as the UTF-8 text they hold.

    Raises:
        ValueError: when a word is bytes that are not UTF-8 (RQ's bookkeeping never has any).
    """
    commands = [[_text(word) for word in arguments] for arguments, _options in pipeline.command_stack]
    pipeline.reset()
    return [json_text.dumps(commands)]


def _text(word: object) -> object:
    kind = type(word)
    if kind is str:
        return word
    if kind is float:
        return repr(word)
    if kind is int:
        return str(word)
    if isinstance(word, str):
        return str.__str__(word)  # an enum's value, as redis-py encodes a str subclass
    if isinstance(word, bytes):
        return word.decode("utf-8")
    raise TypeError(f"a recorded command's word {word!r} is not text, bytes or a number")


@dataclass(frozen=True)
class TaskJobBookkeeping:
    """RQ's bookkeeping of a task job's start and success on one worker, written out directly.

    RQ's methods build an Execution and two registries and queue a dozen commands through
    redis-py to record it, about 45 us a job in a tight loop and two to three times that for a
    worker that waited for its job. These are the same commands as text. A TaskWorker uses them
    only once they agreed with what RQ's own methods recorded for one of its jobs (:func:`agree`):
    an RQ that writes its bookkeeping otherwise keeps its own methods in use.

    Attributes:
        worker_name: the worker's name in RQ.
        worker_key: its hash (``rq:worker:<name>``).
        started_registry: the queue's StartedJobRegistry key.
        intermediate_queue: the queue's intermediate list, which a job is removed from as it
            starts (RQ does so when the worker has one queue); None for none.
    """

    worker_name: str
    worker_key: str
    started_registry: str
    intermediate_queue: str | None

    def start(self, job: Job, execution: Execution, ttl: int) -> list[EncodableT]:
        """What RQ records as ``job`` starts (TaskWorker.queue_preparation), at ``execution.created_at``.

        The attributes RQ's methods set meanwhile (the job's, the worker's) are the caller's to set.
        """
        at = execution.created_at
        stamp, utc, second = repr(at.timestamp()), utcformat(at), int(at.timestamp())
        job_id, worker, ttl_text = job.id, self.worker_name, str(ttl)
        executions = ExecutionRegistry.key_template.format(job_id)
        named = ("worker_name", worker)
        commands = [
            ["HSET", execution.key, "id", execution.id, "created_at", stamp, "last_heartbeat", stamp, *named],
            ["EXPIRE", execution.key, ttl_text],
            ["ZADD", executions, str(second + ttl + 60), execution.id],
            ["EXPIRE", executions, str(ttl + 60)],
            ["ZADD", self.started_registry, str(second + ttl), execution.composite_key],
            ["HSET", self.worker_key, "state", WorkerStatus.BUSY.value],
            ["HSET", self.worker_key, "current_job", job_id],
            ["HSET", self.worker_key, "current_job_working_time", "0"],
            ["HSET", self.worker_key, "last_heartbeat", utc],
            ["EXPIRE", self.worker_key, ttl_text],
            [
                "HSET",
                job.key,
                "last_heartbeat",
                utc,
                "status",
                JobStatus.STARTED.value,
                "started_at",
                utc,
                *named,
            ],
            ["PERSIST", job.key],
        ]
        if self.intermediate_queue is not None:
            commands.append(["LREM", self.intermediate_queue, "1", job_id])
        return [json_text.dumps(commands)]

    def success(self, job: Job, execution: Execution | None, worked: timedelta | None) -> list[EncodableT]:
        """What RQ records as ``job`` succeeds (TaskWorker.queue_success), ``worked`` after it started."""
        commands = [["HINCRBY", self.worker_key, "successful_job_count", "1"]]
        if worked is not None:
            commands.append(
                ["HINCRBYFLOAT", self.worker_key, "total_working_time", repr(worked.total_seconds())]
            )
        commands.append(["HDEL", self.worker_key, "current_job"])
        if execution is not None:
            commands.append(["DEL", execution.key])
            commands.append(["ZREM", self.started_registry, execution.composite_key])
            commands.append(["ZREM", ExecutionRegistry.key_template.format(job.id), execution.id])
        commands.append(["DEL", job.key])
        commands.append(["HSET", self.worker_key, "state", WorkerStatus.IDLE.value])
        return [json_text.dumps(commands)]


def agree(ours: Sequence[EncodableT], theirs: Sequence[EncodableT]) -> bool:
    """Whether two recordings (:func:`recorded`) hold the same commands, word for word.

    Words that are readings of the clock (seconds since 1970, RQ's dates) agree when they are
    at most CLOCK_READINGS_APART apart: RQ's methods read the clock again for each of theirs.
    """
    mine, rqs = [json.loads(str(words)) for words in ours], [json.loads(str(words)) for words in theirs]
    if len(mine) != len(rqs):
        return False
    for one, other in zip(mine, rqs, strict=True):
        if len(one) != len(other):
            return False
        for command, their_command in zip(one, other, strict=True):
            if len(command) != len(their_command):
                return False
            for word, their_word in zip(command, their_command, strict=True):
                if word != their_word and not _clock_readings_close(word, their_word):
                    return False
    return True


def _clock_readings_close(word: str, other: str) -> bool:
    try:
        seconds, other_seconds = float(word), float(other)
    except ValueError:
        try:
            return abs((utcparse(word) - utcparse(other)).total_seconds()) <= CLOCK_READINGS_APART
        except ValueError:
            return False
    return (
        min(seconds, other_seconds) > CLOCK_READING_ABOVE
        and abs(seconds - other_seconds) <= CLOCK_READINGS_APART
    )
