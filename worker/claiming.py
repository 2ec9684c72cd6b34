"""Claiming task jobs: a worker's dequeue moves each job into a list of its own.

RQ moves a dequeued job into a list every worker shares and sweeps it after a minute at the
earliest. A list per worker lets another worker give back what a dead one dequeued as soon as
that one's liveness key expires (worker.leases). A job id whose job is missing, malformed or
another application's is moved aside as it is dequeued (worker.bad_jobs).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from hiredis import pack_command
from redis import Redis
from redis.exceptions import NoScriptError
from redis.typing import EncodableT
from rq import Queue
from rq.exceptions import DequeueTimeout, NoSuchJobError
from rq.job import Job

from orchestrator.protocol.decoding import lossless_text
from orchestrator.protocol.hops import HOPS
from orchestrator.protocol.keys import RQ_JOB_PREFIX, SharedKeys
from orchestrator.protocol.own_connection import own_connection
from orchestrator.protocol.reconnect import OUTAGE_ERRORS
from orchestrator.protocol.scripts import lua_script, lua_source
from orchestrator.settings import Settings
from worker.bad_jobs import bounded_copy, set_aside
from worker.jobs import SERIALIZER, MalformedJob, TaskJob, check_job_id, fetch_task_job, misaddressed


def task_queue_name(settings: Settings) -> str:
    """The RQ queue the orchestrator puts task jobs on."""
    return SharedKeys(settings.prefix).task_queue_name


PEEK_SHA = hashlib.sha1(lua_source("peek_claimed").encode()).hexdigest()


@dataclass(frozen=True)
class Peeked:
    """A claimed job's key as peek_claimed.lua read it, in the dequeue's round trip.

    Attributes:
        kind: the Redis type of the job's key ("none" when there is no such key).
        fields: the job's hash as HGETALL gives it (empty unless ``kind`` is "hash").
    """

    kind: str
    fields: dict[bytes, bytes]


class ClaimingQueue(Queue):
    """A task queue whose dequeue moves the job into one worker's own claimed list.

    RQ moves a dequeued job into a list shared by all workers and sweeps it after a minute at
    the earliest; a list per worker lets another worker give back what a dead one dequeued
    as soon as that one's liveness key expires (see worker.leases).
    """

    claimed_key: ClassVar[str | None] = None
    keys: ClassVar[SharedKeys | None] = None
    reply_lost: ClassVar[bool] = False
    # Whether its worker reads each job's hash with its dequeue and starts it itself (TaskWorker.take).
    takes: ClassVar[bool] = False

    @classmethod
    def dequeue_any(
        cls,
        queues: Iterable[Queue],
        timeout: int | None,
        connection: Redis,
        job_class: type[Job] | None = None,
        serializer: Any = None,
        death_penalty_class: Any = None,
    ) -> tuple[Job, Queue] | None:
        """The next job a worker may run, claimed; jobs that cannot run are moved aside on the way.

        A connection lost during the move (its reply swallowed) or just after it (while the job
        is read) leaves the job in the claimed list, unseen, and this worker stays alive, so
        nobody else would give it back: the next move does.
        """
        try:
            queue_list = list(queues)
            if cls.claimed_key is None or cls.keys is None or len(queue_list) != 1:
                return super().dequeue_any(  # type: ignore[no-any-return]
                    queue_list, timeout, connection, job_class, serializer, death_penalty_class
                )
            return cls._next_runnable(queue_list[0], timeout, connection, job_class or TaskJob)
        except OUTAGE_ERRORS:
            cls.reply_lost = True
            raise

    @classmethod
    def _next_runnable(
        cls, queue: Queue, timeout: int | None, connection: Redis, job_class: type[Job]
    ) -> tuple[Job, Queue] | None:
        assert cls.keys is not None
        while True:
            peeked: Peeked | None = None
            if cls.takes:
                moved_and_peeked = cls.move_and_peek(connection, queue.key, timeout)
                if moved_and_peeked is None:
                    return None
                raw_id, peeked = moved_and_peeked
            else:
                moved = cls.lmove(connection, queue.key, timeout)
                if moved is None:
                    return None
                raw_id = moved[1]
            job_id = lossless_text(raw_id)
            if HOPS.on:
                HOPS.note("claimed", job=job_id)
            try:
                if cls.takes:
                    check_job_id(job_id)
                    claimed = ClaimedJob(job_id, connection=connection, serializer=SERIALIZER)
                    claimed.peeked = peeked
                    return claimed, queue
                job = fetch_task_job(job_class, job_id, connection)
                wrong_place = misaddressed(job, queue.name, cls.keys.events)
                if wrong_place is None:
                    return job, queue
                raise wrong_place
            except NoSuchJobError:
                reason = f"its key {SharedKeys.rq_job(job_id)} does not exist"
                cls.move_aside(connection, raw_id, reason, [])
            except MalformedJob as bad:
                cls.move_aside(connection, raw_id, bad.reason, bad.tasks)

    @classmethod
    def move_aside(
        cls, connection: Redis, raw_id: bytes | str, reason: str, tasks: list[dict[str, Any]]
    ) -> int:
        """Move a claimed job that cannot run to the malformed stream and fail the tasks it names."""
        assert cls.claimed_key is not None and cls.keys is not None
        copy = bounded_copy(connection, SharedKeys.rq_job(lossless_text(raw_id)))
        return set_aside(connection, cls.keys, cls.claimed_key, raw_id, reason, tasks, copy)

    @classmethod
    def lmove(cls, connection: Redis, queue_key: str, timeout: int | None) -> tuple[str, Any] | None:
        """Move the job at the head of ``queue_key`` into the claimed list (blocking up to ``timeout``).

        Raises:
            DequeueTimeout: when ``timeout`` passed with the queue empty.
        """
        if cls.claimed_key is None:
            return super().lmove(connection, queue_key, timeout)
        cls.give_back_if_reply_lost(connection, queue_key)
        if timeout is not None:
            result = connection.blmove(queue_key, cls.claimed_key, timeout)
            if result is None:
                raise DequeueTimeout(timeout, queue_key)
            return queue_key, result
        result = connection.lmove(queue_key, cls.claimed_key)
        return None if result is None else (queue_key, result)

    @classmethod
    def move_and_peek(
        cls, connection: Redis, queue_key: str, timeout: int | None
    ) -> tuple[bytes | str, Peeked | None] | None:
        """As :meth:`lmove`, with the moved job's hash read in the same round trip (peek_claimed.lua).

        The read is pipelined behind the move, so Redis runs it as soon as the move is served.
        Its answer is None when it cannot be trusted to be the moved job's (another id at the
        list's tail) or when the read failed (a script Redis lost is loaded again for the next
        move); the worker then reads the hash on its own (TaskWorker.read_claimed).

        Raises:
            DequeueTimeout: when ``timeout`` passed with the queue empty.
        """
        assert cls.claimed_key is not None
        if timeout is not None:
            move: tuple[EncodableT, ...] = ("BLMOVE", queue_key, cls.claimed_key, "LEFT", "RIGHT", timeout)
        else:
            move = ("LMOVE", queue_key, cls.claimed_key, "LEFT", "RIGHT")
        peek = ("EVALSHA", PEEK_SHA, 1, cls.claimed_key, RQ_JOB_PREFIX)
        moved, peek_reply = cls.exchange(connection, queue_key, [move, peek])
        if isinstance(moved, Exception):
            raise moved
        if moved is None:
            if timeout is not None:
                raise DequeueTimeout(timeout, queue_key)
            return None
        if isinstance(peek_reply, Exception):  # the job is claimed all the same: never leave it unseen
            if isinstance(peek_reply, NoScriptError):
                connection.script_load(lua_source("peek_claimed"))
            return moved, None
        if not peek_reply or peek_reply[0] != moved:
            return moved, None
        kind, flat = lossless_text(peek_reply[1]), peek_reply[2]
        return moved, Peeked(kind, {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)})

    @classmethod
    def exchange(cls, connection: Redis, queue_key: str, commands: list[tuple[EncodableT, ...]]) -> list[Any]:
        """The replies to ``commands`` (a move first), sent in one write; an error reply is its exception.

        They go on a connection the worker keeps for its dequeues (orchestrator.protocol.own_connection);
        through a redis-py pipeline for a client whose class sends commands its own way. A lost
        connection is retried as the client retries its own commands, each attempt first giving
        back what the lost one may have moved.
        """
        assert cls.claimed_key is not None
        own = own_connection(connection, f"dequeue:{cls.claimed_key}")
        if own is None:
            cls.give_back_if_reply_lost(connection, queue_key)
            pipe = connection.pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)
            return pipe.execute(raise_on_error=False)  # type: ignore[no-any-return]
        packed = b"".join(pack_command(command) for command in commands)

        def attempt() -> list[Any]:
            cls.give_back_if_reply_lost(connection, queue_key)
            try:
                return own.exchange(packed, len(commands))
            except OUTAGE_ERRORS:
                cls.reply_lost = True
                raise

        return own.connection().retry.call_with_retry(attempt, lambda _error: None)  # type: ignore[no-any-return]

    @classmethod
    def give_back_if_reply_lost(cls, connection: Redis, queue_key: str) -> None:
        """Give back what the claimed list holds when the last move's reply may have been lost.

        The job then sits in the claimed list, unseen. The list is empty between jobs, so
        whatever is there goes back.
        """
        if cls.reply_lost:
            lua_script(connection, "give_back_jobs")(keys=[cls.claimed_key, queue_key], client=connection)
            cls.reply_lost = False


def claiming_queue_class(settings: Settings, worker: str, takes: bool = False) -> type[ClaimingQueue]:
    """A ClaimingQueue class claiming into ``worker``'s list; a worker that ``takes`` reads each job."""
    keys = SharedKeys(settings.prefix)
    attributes = {"claimed_key": keys.claimed(worker), "keys": keys, "takes": takes}
    return type("ClaimingQueue", (ClaimingQueue,), attributes)


class ClaimedJob(TaskJob):
    """A job id just claimed by a worker that reads each job's hash with its dequeue (TaskWorker.take)."""

    # The job's key as read in the dequeue's round trip; None: the worker reads it as it starts the job.
    peeked: Peeked | None = None
