"""Claiming task jobs: a worker's dequeue moves each job into a list of its own.

RQ moves a dequeued job into a list every worker shares and sweeps it after a minute at the
earliest. A list per worker lets another worker give back what a dead one dequeued as soon as
that one's liveness key expires (worker.leases). A job id whose job is missing, malformed or
another application's is moved aside as it is dequeued (worker.bad_jobs).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from redis import Redis
from rq import Queue
from rq.exceptions import DequeueTimeout, NoSuchJobError
from rq.job import Job

from orchestrator.protocol.decoding import lossless_text
from orchestrator.protocol.hops import HOPS
from orchestrator.protocol.keys import SharedKeys
from orchestrator.protocol.reconnect import OUTAGE_ERRORS
from orchestrator.protocol.scripts import lua_script
from orchestrator.settings import Settings
from worker.bad_jobs import bounded_copy, set_aside
from worker.jobs import SERIALIZER, MalformedJob, TaskJob, check_job_id, fetch_task_job, misaddressed


def task_queue_name(settings: Settings) -> str:
    """The RQ queue the orchestrator puts task jobs on."""
    return SharedKeys(settings.prefix).task_queue_name


class ClaimingQueue(Queue):
    """A task queue whose dequeue moves the job into one worker's own claimed list.

    RQ moves a dequeued job into a list shared by all workers and sweeps it after a minute at
    the earliest; a list per worker lets another worker give back what a dead one dequeued
    as soon as that one's liveness key expires (see worker.leases).
    """

    claimed_key: ClassVar[str | None] = None
    keys: ClassVar[SharedKeys | None] = None
    reply_lost: ClassVar[bool] = False
    # Whether its worker reads each job's hash itself, with the job's start (worker.taking).
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
                    return ClaimedJob(job_id, connection=connection, serializer=SERIALIZER), queue
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
        if cls.reply_lost:
            # The last move may have happened with its reply lost: the job sits in the claimed
            # list, unseen. The list is empty between jobs, so whatever is there goes back.
            lua_script(connection, "give_back_jobs")(keys=[cls.claimed_key, queue_key], client=connection)
            cls.reply_lost = False
        if timeout is not None:
            result = connection.blmove(queue_key, cls.claimed_key, timeout)
            if result is None:
                raise DequeueTimeout(timeout, queue_key)
            return queue_key, result
        result = connection.lmove(queue_key, cls.claimed_key)
        return None if result is None else (queue_key, result)


def claiming_queue_class(settings: Settings, worker: str, takes: bool = False) -> type[ClaimingQueue]:
    """A ClaimingQueue class claiming into ``worker``'s list; a worker that ``takes`` reads each job."""
    keys = SharedKeys(settings.prefix)
    attributes = {"claimed_key": keys.claimed(worker), "keys": keys, "takes": takes}
    return type("ClaimingQueue", (ClaimingQueue,), attributes)


class ClaimedJob(TaskJob):
    """A job id just claimed by a worker that reads each job's hash as it starts it (worker.taking)."""
