"""Running a worker process: start when Redis answers, run RQ's work loop, start it again after an outage.

SIGTERM or Ctrl-C asks for a warm shutdown: the current job may finish, within the stop
grace, then the worker exits; a second signal stops it at once (worker.shutdown). A worker
never quits over a job or a lost connection: RQ's loop is started again under the same name,
and the tasks' leases cover what it was doing.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Sequence

from redis import Redis
from rq.exceptions import StopRequested

from orchestrator.protocol.faults import skew_wall_clock
from orchestrator.protocol.pauses import settle_garbage_collector
from orchestrator.protocol.reconnect import OUTAGE_ERRORS, Backoff, Outage
from orchestrator.settings import Settings, masked_url
from worker.claiming import ClaimingQueue, task_queue_name
from worker.jobs import describe, tasks_named_by
from worker.leases import WorkerLeases
from worker.process import TaskWorker, task_worker
from worker.registry import default_registry
from worker.shutdown import Shutdown

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

log = logging.getLogger(__name__)


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
    skew_wall_clock(settings.fault_clock_skew_seconds)
    for spec in functions:
        log.info("functions from %s: %s", spec, ", ".join(default_registry.load_functions(spec)) or "none")
    connection = Redis.from_url(settings.redis_url)
    name = name or uuid.uuid4().hex
    log.info(
        "worker %s on %s, queue %s, functions: %s",
        name,
        masked_url(settings.redis_url),
        task_queue_name(settings),
        ", ".join(default_registry.names()),
    )
    shutdown = Shutdown(settings.stop_grace_seconds, connection)
    restore_signals = shutdown.install()
    # A lease's end is set by Redis's clock in the lease scripts, the clock the orchestrators fire it by.
    leases = WorkerLeases(connection, settings.prefix, name, settings.lease_seconds)
    outage = Outage.for_settings(settings, f"worker {name}")
    announced = False
    try:
        announced = _announce_when_reachable(leases, outage, shutdown)
        if announced:
            settle_garbage_collector()
            _work_through_outages(connection, settings, name, burst, logging_level, leases, shutdown)
    finally:
        shutdown.tidy_up_only()
        if announced:  # else Redis holds nothing of this worker's to take back
            _leave(leases)
        connection.close()
        restore_signals()


def _announce_when_reachable(leases: WorkerLeases, outage: Outage, shutdown: Shutdown) -> bool:
    """Start the worker's leases once Redis answers; whether it did before a stop was requested.

    A worker may start before Redis does (``docker compose up`` starts them together, and a
    server may still be loading its AOF): that is an outage to wait out, as the orchestrator does.
    """
    try:
        with shutdown.interruptible():
            while True:
                try:
                    leases.start()
                except OUTAGE_ERRORS as exc:
                    if shutdown.wait(outage.failed(exc)):
                        raise StopRequested() from None
                    continue
                outage.succeeded()
                return True
    except StopRequested:
        return False


def _work_through_outages(
    connection: Redis,
    settings: Settings,
    name: str,
    burst: bool,
    logging_level: str,
    leases: WorkerLeases,
    shutdown: Shutdown,
) -> None:
    """Run RQ's work loop, and start it again under the same name until told to stop.

    RQ retries a lost connection only while it waits for a job; lost anywhere else (its
    heartbeat, a job's bookkeeping) it quits, and it quits on any error it did not expect.
    Then the worker waits (for Redis, with back-off; after any other error, a back-off delay,
    having moved the job that raised it aside) and starts over; its tasks' leases cover what
    it was doing. A stop request ends any of these waits at once.
    """
    outage = Outage.for_settings(settings, f"worker {name}")
    restarts = Backoff(settings.reconnect_initial_seconds, settings.reconnect_max_seconds)
    while not shutdown.requested.is_set():
        worker = task_worker(connection, settings, name, shutdown, leases)
        worker.max_connection_wait_time = settings.reconnect_max_seconds
        try:
            if worker.work(burst=burst, logging_level=logging_level):
                restarts.reset()
            lost: Exception | None = None
        except OUTAGE_ERRORS as exc:
            lost = exc
        if burst or shutdown.requested.is_set():
            return
        try:
            with shutdown.interruptible():
                _start_afresh(connection, worker, leases, shutdown, outage, restarts, lost)
        except StopRequested:
            return


def _start_afresh(
    connection: Redis,
    worker: TaskWorker,
    leases: WorkerLeases,
    shutdown: Shutdown,
    outage: Outage,
    restarts: Backoff,
    lost: Exception | None,
) -> None:
    """Get ready for a new work round once RQ's loop quit unasked: wait, then clear the dead round's traces.

    Its registration would make the new round's birth fail as a duplicate, and a job it
    claimed and never started would be claimed for good. Redis lost again meanwhile means
    waiting for it again.

    Raises:
        StopRequested: when a stop is requested meanwhile.
    """
    while True:
        try:
            if lost is None and _redis_takes_writes(leases):
                _recover_from_crash(connection, worker, shutdown, restarts)
            else:
                _wait_for_redis(leases, outage, shutdown, lost or ConnectionError("RQ's work loop quit"))
            connection.delete(worker.key)
            leases.give_back_unstarted()
            return
        except OUTAGE_ERRORS as exc:
            lost = exc


def _recover_from_crash(connection: Redis, worker: TaskWorker, shutdown: Shutdown, restarts: Backoff) -> None:
    """After RQ's loop quit over an error it did not expect: move the job that raised it aside, pause.

    Raises:
        StopRequested: when a stop is requested during the pause.
    """
    if worker.poisoned_by is not None:
        job, error = worker.poisoned_by
        reason = f"running it raised {describe(error)}"
        queue_class = worker.queue_class
        assert issubclass(queue_class, ClaimingQueue)
        tasks = tasks_named_by({b"data": job.data}) if isinstance(job.data, bytes) else []
        if queue_class.move_aside(connection, job.id, reason, tasks) < 0:
            log.error("job %s raised %s after its tasks started; their leases stand", job.id, describe(error))
    delay = restarts.next_delay()
    log.error("worker %s: RQ's work loop quit on an error; starting it again in %.1f s", worker.name, delay)
    if shutdown.wait(delay):
        raise StopRequested()


def _redis_takes_writes(leases: WorkerLeases) -> bool:
    """Whether Redis answers and takes a write (the worker's liveness key): a full one answers PING."""
    try:
        leases.mark_alive()
    except OUTAGE_ERRORS:
        return False
    return True


def _wait_for_redis(leases: WorkerLeases, outage: Outage, shutdown: Shutdown, error: Exception) -> None:
    """Wait with back-off until Redis answers and takes writes.

    Raises:
        StopRequested: when a stop is requested meanwhile.
    """
    while True:
        if shutdown.wait(outage.failed(error)):
            raise StopRequested()
        if _redis_takes_writes(leases):
            outage.succeeded()
            return


def _leave(leases: WorkerLeases) -> None:
    """Leave as a worker that stopped, as far as Redis lets us; what it cannot do expires."""
    try:
        leases.stop()
    except OUTAGE_ERRORS as exc:
        log.warning(
            "leaving without telling Redis (%s): this worker's liveness key expires within %g s, then"
            " another worker gives back what it dequeued and never started",
            exc,
            leases.lease_seconds,
        )


def log_to_stderr(level: str) -> None:
    """Send this process's logs, RQ's included, to stderr (RQ would otherwise use stdout)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, format=LOG_FORMAT)
    logging.getLogger("worker").setLevel(level.upper())
