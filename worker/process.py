"""A worker process: an RQ SimpleWorker that runs registered functions from the task queue.

SimpleWorker runs each job in the worker process itself (~330 jobs/s here, against ~70 for
the forking Worker), which is safe because run_tasks turns every function error into a
report. SIGTERM or Ctrl-C asks for a warm shutdown: the current job finishes, then the
worker exits; a second signal stops it at once.

A task job needs less bookkeeping than RQ does for any job (no dependents, repeats, kept
results or callbacks), so TaskWorker ends it in one transaction and beats at most once a
second: about 10 round trips a job instead of 28, which is most of a task's latency.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from collections.abc import Sequence
from types import FrameType
from typing import Any, ClassVar

from redis import Redis
from redis.client import Pipeline
from rq import Queue, SimpleWorker
from rq.exceptions import DequeueTimeout
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.utils import now

from orchestrator.runtime.keys import Keys
from orchestrator.runtime.reconnect import OUTAGE_ERRORS, Outage
from orchestrator.settings import Settings, masked_url
from worker.entry import ColdShutdown, use_leases, use_settings
from worker.jobs import SERIALIZER, TaskJob
from worker.leases import GIVE_BACK, WorkerLeases, claimed_key
from worker.registry import default_registry

HEARTBEAT_EVERY_SECONDS = 1.0

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

log = logging.getLogger(__name__)


def task_queue_name(settings: Settings) -> str:
    """The RQ queue the orchestrator puts task jobs on."""
    return Keys(settings.prefix).task_queue_name


class ClaimingQueue(Queue):
    """A task queue whose dequeue moves the job into one worker's own claimed list.

    RQ moves a dequeued job into a list shared by all workers and sweeps it after a minute at
    the earliest; a list per worker lets another worker give back what a dead one dequeued
    as soon as that one's liveness key expires (see worker.leases).
    """

    claimed_key: ClassVar[str | None] = None
    reply_lost: ClassVar[bool] = False

    @classmethod
    def dequeue_any(cls, *args: Any, **kwargs: Any) -> tuple[Job, Queue] | None:
        """RQ's dequeue; a connection lost during it leaves the claimed list to be given back.

        Lost during the move (its reply swallowed) or just after it (while the job is read),
        the job sits in the claimed list, unseen, and this worker stays alive, so nobody else
        would give it back: the next move does.
        """
        try:
            return super().dequeue_any(*args, **kwargs)  # type: ignore[no-any-return]
        except OUTAGE_ERRORS:
            cls.reply_lost = True
            raise

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
            connection.eval(GIVE_BACK, 2, cls.claimed_key, queue_key)
            cls.reply_lost = False
        if timeout is not None:
            result = connection.blmove(queue_key, cls.claimed_key, timeout)
            if result is None:
                raise DequeueTimeout(timeout, queue_key)
            return queue_key, result
        result = connection.lmove(queue_key, cls.claimed_key)
        return None if result is None else (queue_key, result)


def claiming_queue_class(settings: Settings, worker: str) -> type[ClaimingQueue]:
    """A ClaimingQueue class that claims into ``worker``'s list."""
    return type("ClaimingQueue", (ClaimingQueue,), {"claimed_key": claimed_key(settings.prefix, worker)})


class TaskWorker(SimpleWorker):
    """A SimpleWorker that runs only TaskJobs and whose cold shutdown run_tasks lets through."""

    job_class = TaskJob
    _beaten_at = float("-inf")

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        """Extend the worker's key, in one round trip, and not again within HEARTBEAT_EVERY_SECONDS.

        RQ beats twice around every dequeue, two round trips each; the key lives for minutes,
        so a beat that soon after the last one only costs a busy worker time.
        """
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)
            return
        if timeout is None and time.monotonic() - self._beaten_at < HEARTBEAT_EVERY_SECONDS:
            return
        with self.connection.pipeline(transaction=False) as beat:
            super().heartbeat(timeout, beat)
            beat.execute()
        self._beaten_at = time.monotonic()

    def set_state(self, state: str, pipeline: Pipeline | None = None) -> None:
        """Record the worker's state; a state it already recorded costs no round trip."""
        if pipeline is None and state == self._state:
            return
        super().set_state(state, pipeline)

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        """Note when the job ended.

        RQ also beats the job's heartbeat here, a round trip that guards a success or failure
        callback; a task job runs none.
        """
        job.ended_at = now()

    def handle_job_success(self, job: Job, queue: Queue, started_job_registry: StartedJobRegistry) -> None:
        """End a finished job in one transaction: count it, close its execution, delete it.

        RQ's own path watches and enqueues dependents, handles repeats and removes the job
        from every registry one by one, a dozen round trips a job. A task job has none of
        these: the orchestrator gives it no dependents, no repeats and a result TTL of 0,
        and its outcome already went out as reports.
        """
        if job.repeats_left or job.get_result_ttl(self.default_result_ttl) != 0:
            super().handle_job_success(job, queue, started_job_registry)
            return
        with self.connection.pipeline() as pipeline:
            self.increment_successful_job_count(pipeline=pipeline)
            if job.started_at and job.ended_at:
                self.increment_total_working_time(job.ended_at - job.started_at, pipeline)
            self.cleanup_execution(job, pipeline=pipeline)
            pipeline.delete(job.key)
            pipeline.execute()
        self.log.info("Successfully completed job %s on worker %s", job.id, self.name)

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        """Stop now, even in the middle of a function (the second SIGTERM or Ctrl-C)."""
        try:
            super().request_force_stop(signum, frame)
        except SystemExit:
            raise ColdShutdown() from None


def task_worker(connection: Redis, settings: Settings, name: str | None = None) -> TaskWorker:
    """A worker on the settings' task queue, reading JSON jobs only, claiming each into its own list."""
    name = name or uuid.uuid4().hex
    queue_class = claiming_queue_class(settings, name)
    queue = queue_class(
        task_queue_name(settings), connection=connection, serializer=SERIALIZER, job_class=TaskJob
    )
    return TaskWorker(
        [queue],
        name=name,
        connection=connection,
        serializer=SERIALIZER,
        job_class=TaskJob,
        queue_class=queue_class,
        # Outcomes travel as reports on the event stream; an RQ result would only take memory.
        default_result_ttl=0,
        # A job's description holds its payloads: too big and too private for an INFO line each.
        log_job_description=False,
    )


def run_worker(
    settings: Settings,
    functions: Sequence[str] = (),
    burst: bool = False,
    name: str | None = None,
    *,
    logging_level: str = "INFO",
) -> None:
    """Run a worker until told to stop (or, with ``burst``, until the queue is empty).

    Args:
        settings: where Redis is (``redis_url``) and the key prefix.
        functions: Python files or module names whose ``(event, context)`` functions are
            registered next to ValidateDragon and AddDragon.
        burst: stop once the queue is empty instead of waiting for more work.
        name: the worker's name in RQ (unique among live workers); a random one by default.
        logging_level: the level of the stderr log.

    Raises:
        ImportError: when a functions file or module cannot be imported.
    """
    log_to_stderr(logging_level)
    for spec in functions:
        log.info("functions from %s: %s", spec, ", ".join(default_registry.load_functions(spec)) or "none")
    use_settings(settings)
    connection = Redis.from_url(settings.redis_url)
    name = name or uuid.uuid4().hex
    log.info(
        "worker %s on %s, queue %s, functions: %s",
        name,
        masked_url(settings.redis_url),
        task_queue_name(settings),
        ", ".join(default_registry.names()),
    )
    leases = WorkerLeases(connection, settings.prefix, name, settings.lease_seconds)
    leases.start()
    use_leases(leases)
    try:
        _work_through_outages(connection, settings, name, burst, logging_level, leases)
    finally:
        use_leases(None)
        leases.stop()
        connection.close()


def _work_through_outages(
    connection: Redis, settings: Settings, name: str, burst: bool, logging_level: str, leases: WorkerLeases
) -> None:
    """Run RQ's work loop, and start it again under the same name whenever Redis went away.

    RQ retries a lost connection only while it waits for a job; lost anywhere else (its
    heartbeat, a job's bookkeeping) it quits. A worker that quits without being asked to
    waits for Redis with back-off and starts over; its tasks' leases cover what it was doing.
    """
    outage = Outage.for_settings(settings, f"worker {name}")
    while True:
        worker = task_worker(connection, settings, name)
        worker.max_connection_wait_time = settings.reconnect_max_seconds
        try:
            worker.work(burst=burst, logging_level=logging_level)
            lost: Exception | None = None
        except OUTAGE_ERRORS as exc:
            lost = exc
        if burst or getattr(worker, "_stop_requested", False):
            return
        if lost is None and _redis_answers(connection):
            return  # RQ stopped for a reason of its own (such as max jobs): so do we
        _wait_for_redis(connection, outage, lost or ConnectionError("RQ's work loop quit"))
        # The dead round's registration would make the new one's birth fail as a duplicate.
        connection.delete(worker.key)
        leases.give_back_unstarted()


def _redis_answers(connection: Redis) -> bool:
    try:
        return bool(connection.ping())
    except OUTAGE_ERRORS:
        return False


def _wait_for_redis(connection: Redis, outage: Outage, error: Exception) -> None:
    while True:
        time.sleep(outage.failed(error))
        if _redis_answers(connection):
            outage.succeeded()
            return


def log_to_stderr(level: str) -> None:
    """Send this process's logs, RQ's included, to stderr (RQ would otherwise use stdout)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, format=LOG_FORMAT)
    logging.getLogger("worker").setLevel(level.upper())
