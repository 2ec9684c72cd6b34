"""A worker process: an RQ SimpleWorker that runs registered functions from the task queue.

SimpleWorker runs each job in the worker process itself (~330 jobs/s here, against ~70 for
the forking Worker), which is safe because run_tasks turns every function error into a
report. Its queue claims each job into the worker's own list (worker.claiming); the process
around it is worker.running.

A task job needs less bookkeeping than RQ does for any job (no dependents, repeats, kept
results or callbacks), so TaskWorker sends RQ's bookkeeping of its start with the tasks'
leases and that of its end with the reports (worker.bookkeeping), and beats and checks for
``rq suspend`` at most once a second. A job's hash comes with its dequeue (worker.claiming),
and a job as the orchestrators write it is started while its functions run
(WorkerLeases.send_start): from the job's id to its function no round trip of its own where
RQ with START took five, and none after the reports. Any other job is started before its
functions, in its preparation.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from functools import partial
from types import FrameType

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import ResponseError
from redis.typing import EncodableT
from rq import Queue, SimpleWorker
from rq.exceptions import NoSuchJobError
from rq.executions import Execution, ExecutionRegistry
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.utils import now
from rq.worker import WorkerStatus

from orchestrator.protocol.decoding import lossless_text
from orchestrator.protocol.reconnect import OUTAGE_ERRORS, retry_through_outage
from orchestrator.protocol.scripts import lua_source
from orchestrator.settings import Settings
from worker.bookkeeping import TaskJobBookkeeping, agree, recorded, recorder
from worker.claiming import ClaimedJob, ClaimingQueue, Peeked, claiming_queue_class, task_queue_name
from worker.entry import ColdShutdown, JobEnding, WorkerContext, is_addressable
from worker.jobs import SERIALIZER, MalformedJob, TaskJob, decode_task_job, decoded_quickly, misaddressed
from worker.leases import START_ATTEMPTS, WorkerLeases
from worker.shutdown import Shutdown

HEARTBEAT_EVERY_SECONDS = 1.0


class TaskWorker(SimpleWorker):
    """A SimpleWorker that runs only TaskJobs and whose cold shutdown run_tasks lets through.

    With a ``shutdown``, the process's stop request (worker.shutdown) stands in for RQ's own,
    which lives only as long as one work round.
    """

    job_class = TaskJob
    _beaten_at = float("-inf")
    _suspension_checked_at = float("-inf")
    context: WorkerContext | None = None  # what its jobs run with: the key prefix and the leases
    shutdown: Shutdown | None = None
    # The job whose run raised something other than a lost connection, and what it raised.
    poisoned_by: tuple[Job, Exception] | None = None
    _rq_stop_requested = False
    # Its queue's name and the direct writer of RQ's bookkeeping of its jobs there (worker.bookkeeping),
    # and whether that agreed with RQ's methods on a job's start and success (None: not compared yet).
    _quick_bookkeeping: tuple[str, TaskJobBookkeeping] | None = None
    _start_agreed: bool | None = None
    _success_agreed: bool | None = None

    @property  # type: ignore[override]
    def _stop_requested(self) -> bool:
        """Whether the work loop should end before its next job (RQ checks this)."""
        if self.shutdown is not None and self.shutdown.requested.is_set():
            return True
        return self._rq_stop_requested

    @_stop_requested.setter
    def _stop_requested(self, value: bool) -> None:
        self._rq_stop_requested = value

    def _install_signal_handlers(self) -> None:
        """RQ's handlers, unless the process's own Shutdown handles SIGTERM and SIGINT."""
        if self.shutdown is None:
            super()._install_signal_handlers()

    def unsubscribe(self) -> None:
        """Leave the worker's command channel, waiting at most a second for its listening thread.

        redis-py 8's stop() waits for that thread, which, once nothing is subscribed, sleeps
        out RQ's minute-long wait for a subscription: every stop took up to a minute. The
        thread is a daemon and ends by itself.
        """
        thread = self.pubsub_thread
        if thread is None:
            return
        self.pubsub.unsubscribe()
        try:
            thread.stop(timeout=1.0)
        except TypeError:  # redis-py before 8: stop() takes no timeout and does not wait
            thread.stop()
        self.pubsub.close()

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        """RQ's wait for a job, which a stop request ends at once, even in RQ's reconnect sleep.

        A job dequeued as the request arrives stays in the claimed list, and goes back to the
        queue when the worker leaves (worker.leases).
        """
        if self.shutdown is None:
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        with self.shutdown.interruptible():
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run ``job``, unless a stop was requested since it was dequeued (then it stays claimed).

        Anything but a lost connection that escapes RQ's handling is kept in ``poisoned_by``,
        so the work loop can move the job aside instead of running it again forever.
        """
        if self.shutdown is None:
            self._take_and_execute(job, queue)
            return
        if self.shutdown.requested.is_set():
            self.log.info("Worker %s: stopping; job %s goes back to the queue unstarted", self.name, job.id)
            return
        with self.shutdown.running_job():
            self._take_and_execute(job, queue)

    def _take_and_execute(self, job: Job, queue: Queue) -> None:
        if isinstance(job, ClaimedJob):
            taken = self.take(job, queue)
            if taken is None:
                return
            job = taken
        try:
            super().execute_job(job, queue)
        except OUTAGE_ERRORS:
            raise
        except Exception as exc:
            if self.shutdown is not None:
                self.poisoned_by = (job, exc)
            raise

    def take(self, claimed: ClaimedJob, queue: Queue) -> TaskJob | None:
        """The claimed job, decoded and, when the orchestrators wrote it, started; None when moved aside.

        Its hash came with its dequeue (peek_claimed.lua), or is read now when it did not. A job
        exactly as the orchestrators write it is started without waiting (WorkerLeases.send_start):
        its functions run while START travels. Any other is read strictly and started in its
        preparation, before its functions, as RQ starts a job.
        """
        assert self.context is not None and self.context.leases is not None
        self.execution = None
        peeked = claimed.peeked or self.read_claimed(claimed)
        job = self.as_the_orchestrators_write_it(claimed, queue, peeked)
        if job is None:
            return self.decoded_or_moved_aside(claimed, queue, peeked)
        leases = self.context.leases
        tasks = [task for task in job.args[0] if is_addressable(task)]
        leases.send_start(job.id, leases.hold(tasks), self.recorded_start(job, queue))
        job.started_by_take = True
        return job

    def read_claimed(self, claimed: ClaimedJob) -> Peeked:
        """The claimed job's key, read now: its hash did not come with its dequeue.

        Raises:
            redis.ConnectionError, redis.TimeoutError: when Redis is away; the job stays claimed,
                and the work loop, starting afresh, gives it back.
        """
        try:
            fields = self.connection.hgetall(claimed.key)
        except ResponseError:  # WRONGTYPE: the key holds something else
            return Peeked(lossless_text(self.connection.type(claimed.key)), {})
        return Peeked("hash" if fields else "none", fields)

    def as_the_orchestrators_write_it(
        self, claimed: ClaimedJob, queue: Queue, peeked: Peeked
    ) -> TaskJob | None:
        """The peeked job when its hash is exactly as the orchestrators write it for this queue, else None."""
        queue_class = self.queue_class
        assert issubclass(queue_class, ClaimingQueue) and queue_class.keys is not None
        if peeked.kind != "hash":
            return None
        job = decoded_quickly(claimed.id, peeked.fields, self.connection)
        if job is None or misaddressed(job, queue.name, queue_class.keys.events) is not None:
            return None
        return job

    def decoded_or_moved_aside(self, claimed: ClaimedJob, queue: Queue, peeked: Peeked) -> TaskJob | None:
        """The task job the claimed job's key holds, read strictly; None when it cannot run (moved aside)."""
        queue_class = self.queue_class
        assert issubclass(queue_class, ClaimingQueue) and queue_class.keys is not None
        try:
            if peeked.kind == "none":
                raise NoSuchJobError(f"No such job: {claimed.key}")
            if peeked.kind != "hash":
                raise MalformedJob(claimed.id, f"its key {claimed.key} holds no hash")
            job = decode_task_job(claimed.id, peeked.fields, self.connection)
            wrong_place = misaddressed(job, queue.name, queue_class.keys.events)
            if wrong_place is not None:
                raise wrong_place
        except (NoSuchJobError, MalformedJob) as refused:
            reason = (
                refused.reason
                if isinstance(refused, MalformedJob)
                else f"its key {claimed.key} does not exist"
            )
            tasks = refused.tasks if isinstance(refused, MalformedJob) else []
            queue_class.move_aside(self.connection, claimed.id, reason, tasks)
            self.execution = None
            return None
        return job

    def recorded_start(self, job: TaskJob, queue: Queue) -> list[EncodableT]:
        """RQ's bookkeeping of the job's start (queue_preparation), recorded, with what it sets on the job.

        Written out directly (TaskJobBookkeeping) once that agreed with what RQ's methods
        recorded for this worker's first job; by RQ's methods until then, or for good if not.
        """
        intermediate = len(self.queues) == 1
        quick = self.quick_bookkeeping(queue, intermediate)
        if quick is None or not self._start_agreed:
            preparation = recorder(self.connection)
            self.queue_preparation(job, preparation, intermediate)
            theirs = recorded(preparation)
            if quick is not None and self._start_agreed is None:
                assert self.execution is not None
                ours = quick.start(job, self.execution, self.get_heartbeat_ttl(job))
                self._start_agreed = self.agreed("start", ours, theirs)
            return theirs
        execution = Execution(uuid.uuid4().hex, job.id, job.connection, worker_name=self.name)
        self.execution = execution
        at = execution.created_at  # one reading of the clock for all (RQ's methods read it for each)
        ours = quick.start(job, execution, self.get_heartbeat_ttl(job))
        self._state, self.current_job_working_time, self.last_heartbeat = WorkerStatus.BUSY, 0, at
        job.worker_name, job.last_heartbeat, job.started_at = self.name, at, at
        job._status = JobStatus.STARTED
        return ours

    def quick_bookkeeping(self, queue: Queue, intermediate: bool) -> TaskJobBookkeeping | None:
        """The direct writer of RQ's bookkeeping of the worker's jobs on ``queue``; None without leases."""
        if self.context is None or self.context.leases is None:
            return None
        quick = self._quick_bookkeeping
        removes = quick is not None and quick[1].intermediate_queue is not None
        if quick is None or quick[0] != queue.name or removes != intermediate:
            intermediate_queue = None
            if intermediate:
                queue_key = Queue.redis_queue_namespace_prefix + queue.name
                intermediate_queue = IntermediateQueue.get_intermediate_queue_key(queue_key)
            started = StartedJobRegistry(queue.name, connection=self.connection, job_class=TaskJob).key
            writer = TaskJobBookkeeping(self.name, self.key, started, intermediate_queue)
            self._quick_bookkeeping = quick = (queue.name, writer)
        return quick[1]

    def agreed(self, what: str, ours: list[EncodableT], theirs: list[EncodableT]) -> bool:
        """Whether the direct writing of RQ's bookkeeping of a job's ``what`` agreed with RQ's methods."""
        if agree(ours, theirs):
            return True
        self.log.warning(
            "worker %s: RQ records a job's %s otherwise than this worker would write it directly;"
            " its own methods record it from now on",
            self.name,
            what,
        )
        return False

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

    def check_for_suspension(self, burst: bool) -> None:
        """RQ's check for ``rq suspend``, at most once per HEARTBEAT_EVERY_SECONDS.

        RQ checks before every job, a round trip each (with a heartbeat); a suspension now
        takes effect within a second instead, as the worker's key shows it within one.
        """
        if time.monotonic() - self._suspension_checked_at < HEARTBEAT_EVERY_SECONDS:
            return
        super().check_for_suspension(burst)
        self._suspension_checked_at = time.monotonic()

    def set_state(self, state: str, pipeline: Pipeline | None = None) -> None:
        """Record the worker's state; a state it already recorded costs no round trip."""
        if pipeline is None and state == self._state:
            return
        super().set_state(state, pipeline)

    def prepare_execution(self, job: Job) -> Execution:
        """The job's execution record, written by prepare_job_execution with the rest of RQ's bookkeeping.

        RQ writes it (and the busy state) in a transaction of its own, then prepares the job
        in another, persists the job's key in a third and starts the tasks' leases in a
        fourth, all before the function runs: here one script call does all four.
        """
        if isinstance(job, TaskJob) and job.started_by_take and self.execution is not None:
            return self.execution  # the one its START wrote (TaskWorker.take)
        self.execution = Execution(uuid.uuid4().hex, job.id, job.connection, worker_name=self.name)
        return self.execution

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        """RQ's bookkeeping before a job runs, its execution record and the tasks' START, in one script call.

        RQ's own methods record the bookkeeping (worker.bookkeeping) and START applies it with
        the leases. The call is safe to repeat, so a lost connection is retried as START alone
        was; when Redis stays away, the job fails before its tasks began, as RQ's own
        preparation would (see handle_job_failure).
        """
        if not (isinstance(job, TaskJob) and job.started_by_take):  # else its START wrote it all
            self.send_preparation(job, remove_from_intermediate_queue)
        if isinstance(job, TaskJob):
            job.persisted = True
            job.worker = self.context_for(job)

    def send_preparation(self, job: Job, remove_from_intermediate_queue: bool) -> None:
        """RQ's bookkeeping of the job's start, with the tasks' START when the worker holds leases."""
        leases = self.context.leases if self.context is not None else None
        if leases is None or not isinstance(job, TaskJob):

            def prepare() -> None:
                with self.connection.pipeline() as pipeline:
                    self.queue_preparation(job, pipeline, remove_from_intermediate_queue)
                    pipeline.execute()

            retry_through_outage(prepare, START_ATTEMPTS, f"starting job {job.id}")
            return
        held = leases.hold([task for task in job.args[0] if is_addressable(task)])
        preparation = recorder(self.connection)
        self.queue_preparation(job, preparation, remove_from_intermediate_queue)
        leases.start_with(job.id, held, recorded(preparation))

    def context_for(self, job: TaskJob) -> WorkerContext | None:
        """The context the job's tasks run with: with the job's ending when it can go with the reports.

        It can when RQ's success path would only end the job: no repeats, no result kept
        (what the orchestrator's jobs ask for; a job enqueued by hand may ask otherwise).
        """
        if self.context is None or job.repeats_left or job.get_result_ttl(self.default_result_ttl) != 0:
            return self.context
        return replace(self.context, ending=JobEnding(partial(self.recorded_success, job)))

    def recorded_success(self, job: Job) -> list[EncodableT]:
        """RQ's bookkeeping of the job's success, recorded to go with its reports (JobEnding).

        Written out directly once that agreed with RQ's methods, as recorded_start is.
        """
        job.ended_at = now()
        worked = job.ended_at - job.started_at if job.started_at else None
        quick = self._quick_bookkeeping[1] if self._quick_bookkeeping is not None else None
        if quick is not None and job.origin != self._quick_bookkeeping[0]:
            quick = None
        execution = self.execution
        if quick is None or not self._success_agreed:
            ending = recorder(self.connection)
            self.queue_success(job, ending)
            theirs = recorded(ending)
            if quick is not None and self._success_agreed is None:
                self._success_agreed = self.agreed("success", quick.success(job, execution, worked), theirs)
            return theirs
        self.execution, self._state = None, WorkerStatus.IDLE
        return quick.success(job, execution, worked)

    def queue_preparation(self, job: Job, pipeline: Pipeline, remove_from_intermediate_queue: bool) -> None:
        """Queue on ``pipeline`` what RQ writes before a job runs (the worker's and the job's state)."""
        ttl = self.get_heartbeat_ttl(job)
        execution = self.execution or self.prepare_execution(job)
        execution.save(ttl=ttl, pipeline=pipeline)
        ExecutionRegistry(job.id, pipeline).add(execution=execution, ttl=ttl, pipeline=pipeline)
        job.started_job_registry.add_execution(execution, pipeline=pipeline, ttl=ttl, xx=False)
        self.set_state(WorkerStatus.BUSY, pipeline=pipeline)
        self.set_current_job_id(job.id, pipeline=pipeline)
        self.set_current_job_working_time(0, pipeline=pipeline)
        self.heartbeat(ttl, pipeline=pipeline)
        job.prepare_for_execution(self.name, pipeline=pipeline)  # sets the job's last_heartbeat too
        pipeline.persist(job.key)  # RQ's Job.perform does this in a round trip of its own
        if remove_from_intermediate_queue:
            queue_key = Queue.redis_queue_namespace_prefix + job.origin
            pipeline.lrem(IntermediateQueue.get_intermediate_queue_key(queue_key), 1, job.id)

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        """Note when the job ended.

        RQ also beats the job's heartbeat here, a round trip that guards a success or failure
        callback; a task job runs none.
        """
        job.ended_at = now()

    def handle_job_success(self, job: Job, queue: Queue, started_job_registry: StartedJobRegistry) -> None:
        """End a finished job: count it, close its execution, delete it, go idle, in one call at most.

        RQ's own path watches and enqueues dependents, handles repeats and removes the job
        from every registry one by one, a dozen round trips a job. A task job has none of
        these: the orchestrator gives it no dependents, no repeats and a result TTL of 0, and
        its outcome already went out as reports, in the same script call as this bookkeeping
        (JobEnding); a job whose reports went without it ends in a transaction of its own.
        """
        if job.repeats_left or job.get_result_ttl(self.default_result_ttl) != 0:
            super().handle_job_success(job, queue, started_job_registry)
            return
        if not ended_with_its_reports(job):
            with self.connection.pipeline() as pipeline:
                self.queue_success(job, pipeline)
                pipeline.execute()
        self.log.info("Successfully completed job %s on worker %s", job.id, self.name)

    def queue_success(self, job: Job, pipeline: Pipeline) -> None:
        """Queue on ``pipeline`` RQ's bookkeeping of a task job's success, through RQ's own methods."""
        self.increment_successful_job_count(pipeline=pipeline)
        if job.started_at and job.ended_at:
            self.increment_total_working_time(job.ended_at - job.started_at, pipeline)
        self.cleanup_execution(job, pipeline=pipeline)
        pipeline.delete(job.key)
        # RQ sets it next in a round trip of its own; set here, that one finds it set.
        self.set_state(WorkerStatus.IDLE, pipeline=pipeline)

    def handle_job_failure(
        self,
        job: Job,
        queue: Queue,
        started_job_registry: StartedJobRegistry | None = None,
        exc_string: str = "",
    ) -> None:
        """Fail the job as RQ does, and have the next dequeue give back what it left claimed.

        RQ's own preparation of a job (a transaction before the function runs) can lose Redis;
        RQ then fails the job and goes on. Its tasks never began: the job still sits in this
        worker's claimed list, which nobody else empties while this worker lives, so without
        this its executions would wait forever. A job whose tasks began left the list already.

        A job whose reports went out with its success's bookkeeping (a cold shutdown landed
        just after) was ended already: RQ's failure path would only bring its deleted key back.
        """
        if ended_with_its_reports(job):
            self.log.warning("job %s was interrupted after its reports and its end went out", job.id)
            return
        if issubclass(self.queue_class, ClaimingQueue):
            self.queue_class.reply_lost = True
        super().handle_job_failure(job, queue, started_job_registry, exc_string)

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        """Stop now, even in the middle of a function (the second SIGTERM or Ctrl-C)."""
        try:
            super().request_force_stop(signum, frame)
        except SystemExit:
            raise ColdShutdown() from None


def ended_with_its_reports(job: Job) -> bool:
    """Whether RQ's bookkeeping of the job's success went out with its reports (JobEnding)."""
    context = job.worker if isinstance(job, TaskJob) else None
    return context is not None and context.ending is not None and context.ending.sent


def task_worker(
    connection: Redis,
    settings: Settings,
    name: str | None = None,
    shutdown: Shutdown | None = None,
    leases: WorkerLeases | None = None,
) -> TaskWorker:
    """A worker on the settings' task queue, reading JSON jobs only, claiming each into its own list.

    Args:
        connection: the worker's Redis client.
        settings: the key prefix and the queue.
        name: the worker's name in RQ; a random one by default.
        shutdown: the process's stop request; None leaves SIGTERM and SIGINT to RQ.
        leases: the process's task leases (started); None runs tasks without leases.
    """
    name = name or uuid.uuid4().hex
    queue_class = claiming_queue_class(settings, name, takes=leases is not None)
    queue = queue_class(
        task_queue_name(settings), connection=connection, serializer=SERIALIZER, job_class=TaskJob
    )
    worker = TaskWorker(
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
    worker.shutdown = shutdown
    worker.context = WorkerContext(settings.prefix, leases)
    if leases is not None:
        # Sent without waiting or pipelined behind a dequeue, these two find out only late that
        # Redis lacks them (a restart, SCRIPT FLUSH): load them now, as the loop starts.
        for script in ("peek_claimed", "start_tasks"):
            connection.script_load(lua_source(script))
    return worker
