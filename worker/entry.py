"""The RQ job that carries task invocations to registered functions and reports their outcome.

One job may carry several tasks. Each task's outcome becomes a TaskReport; all reports of a
job go to the orchestrator's event stream in one pipeline, one XADD each with the single
field ``event`` holding the report's JSON. A function that raises fails its task, never the
job or the worker: Retry and Catch belong to the state machine, not to RQ.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.commands.core import Script
from redis.typing import EncodableT
from rq import get_current_job
from rq.job import Job
from rq.timeouts import JobTimeoutException

from orchestrator.protocol import invocation
from orchestrator.protocol.hops import HOPS
from orchestrator.protocol.invocation import LambdaContext, error_document, marshal_error
from orchestrator.protocol.jobs import rq_job_fields, timed_by_own_timeouts
from orchestrator.protocol.keys import EVENT_FIELD, RQ_QUEUES, SharedKeys
from orchestrator.protocol.metrics import TaskMeter
from orchestrator.protocol.reconnect import retry_through_outage
from orchestrator.protocol.scripts import lua_script
from orchestrator.protocol.tasks import Task, TaskReport, function_arn
from orchestrator.settings import Settings
from worker.bookkeeping import NO_COMMANDS
from worker.context import DEFAULT_TIMEOUT_SECONDS
from worker.direct_calls import direct_script
from worker.leases import WorkerLeases
from worker.registry import FunctionRegistry, default_registry

TIMEOUT_ERROR = "Sandbox.Timedout"
# How often a job's reports are sent while Redis is lost, with doubling delays (about 13 s in all).
REPORT_ATTEMPTS = 12

log = logging.getLogger(__name__)


class ColdShutdown(SystemExit):
    """The worker was told to stop now; unlike a function's own ``sys.exit()``, it is let through."""


@dataclass
class JobEnding:
    """RQ's bookkeeping of a job's success, to be sent in the same script call as the job's reports.

    Attributes:
        record: records the bookkeeping (worker.bookkeeping) and returns the recorded writes.
        sent: whether they went out with the reports (then the worker sends nothing more).
    """

    record: Callable[[], Sequence[EncodableT]]
    sent: bool = False


@dataclass(frozen=True)
class WorkerContext:
    """What a job's tasks run with on a redstep worker: the key prefix, the worker's leases, the job's end.

    A TaskWorker hands its own to each TaskJob it runs (worker.process, worker.jobs), with
    the job's ending when RQ's bookkeeping of its success can go with its reports.
    """

    prefix: str
    leases: WorkerLeases | None = None
    ending: JobEnding | None = None


@cache
def environment_context() -> WorkerContext:
    """The context of a job run by a worker that gave none (a plain RQ worker): the environment's prefix."""
    return WorkerContext(Settings().prefix)


@dataclass(frozen=True)
class TimeLimit:
    """The time a job's tasks share: RQ's job timeout, counted from when the tasks start."""

    seconds: float
    deadline: float

    @classmethod
    def from_now(cls, seconds: float) -> TimeLimit:
        """A limit of ``seconds`` that starts counting now."""
        return cls(seconds, time.monotonic() + seconds)


def run_tasks(tasks: list[dict[str, Any]], events_key: str, worker: WorkerContext | None = None) -> None:
    """RQ job entry: run every task and report every outcome on ``events_key``.

    Args:
        tasks: the Task messages this job carries.
        events_key: the orchestrator's event stream.
        worker: the running worker's context (TaskJob passes its worker's); the
            environment's prefix and no leases when None.

    Raises:
        RuntimeError: when called outside an RQ job (call ``carry_out`` instead).
    """
    job = get_current_job()
    if job is None:
        raise RuntimeError("run_tasks runs inside an RQ job; outside one, call carry_out")
    worker = worker or environment_context()
    carry_out(
        tasks,
        events_key,
        connection=job.connection,
        prefix=worker.prefix,
        timeout_seconds=job_timeout_seconds(job),
        leases=worker.leases,
        job_id=job.id,
        ending=worker.ending,
    )


def job_timeout_seconds(job: Job) -> float:
    """How long the job may run, as RQ will enforce it."""
    timeout = job.timeout
    if timeout is None or timeout <= 0:
        return DEFAULT_TIMEOUT_SECONDS
    return float(timeout)


def carry_out(
    tasks: Iterable[dict[str, Any]],
    events_key: str,
    *,
    connection: Redis,
    prefix: str,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    registry: FunctionRegistry = default_registry,
    leases: WorkerLeases | None = None,
    job_id: str = "",
    ending: JobEnding | None = None,
) -> list[TaskReport]:
    """Run ``tasks`` one after another and append their reports to ``events_key`` in one script call.

    With ``leases``, each task is leased before anything runs and its lease goes in the same
    call as the reports; so does the job's ``ending``, when given. A cold shutdown in the
    middle publishes what finished and hands the rest back to the task queue as a new job, so
    no task waits for its lease to fire.

    Returns:
        The reports, in task order (tasks too malformed to address a report to are skipped).
    """
    limit = TimeLimit.from_now(timeout_seconds)
    runnable = addressable(tasks)
    own_timeouts = timed_by_own_timeouts(runnable, timeout_seconds)
    held = leases.take(job_id, runnable) if leases is not None else []
    encoded: list[tuple[TaskReport, str]] = []
    ended = 0  # how many tasks ended, reported or stopped past their own timeout
    meter = TaskMeter()  # metrics: each task's duration and failure, sent with the reports
    try:
        try:
            # One at a time, so a cold shutdown keeps the reports of the tasks that finished.
            began = time.time()
            for task, item in invoke_all(
                runnable,
                connection=connection,
                prefix=prefix,
                limit=limit,
                registry=registry,
                own_timeouts=own_timeouts,
            ):
                ended += 1
                if item is None:
                    continue
                encoded.append(item)
                meter.lap(task, item[0])
                if HOPS.on:
                    now = time.time()
                    HOPS.note("ran", job=job_id, execution=task["execution"], began=began, at=now)
                    began = now
        except ColdShutdown:
            unfinished = runnable[ended:]
            log.warning("stopping now: %d task(s) handed back to the queue", len(unfinished))
            if leases is not None:
                leases.confirm_start(job_id)  # the hand-back removes the leases START set
            hand_back(connection, prefix, events_key, [line for _, line in encoded], held, unfinished)
            raise
        # The leases are renewed until the reports are in: a Redis that is away a moment costs
        # no Lambda.Unknown and no second run. A repeated append is harmless: a token is taken once.
        lines = [line for _, line in encoded]
        if leases is not None:
            leases.confirm_start(job_id)  # the reports remove the leases, and RQ's end follows its start
        recorded = ending.record() if ending is not None else NO_COMMANDS
        counts = meter.script_arguments(prefix)
        retry_through_outage(
            lambda: publish_reports(
                connection, events_key, lines, held, SharedKeys(prefix).leases, counts, recorded
            ),
            REPORT_ATTEMPTS,
            f"reporting job {job_id or '(unnamed)'}",
        )
        if ending is not None:
            ending.sent = True
        if HOPS.on:
            HOPS.note("reported", job=job_id)
    finally:
        if leases is not None:
            leases.release(job_id)
    return [report for report, _ in encoded]


def addressable(tasks: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tasks that name the execution and token a report must carry; the rest are logged and dropped."""
    kept = []
    for task in tasks:
        if is_addressable(task):
            kept.append(task)
        else:
            log.error("task dropped: it names no execution and token to report to: %.300r", task)
    return kept


def hand_back(
    connection: Redis,
    prefix: str,
    events_key: str,
    reports: list[str],
    leases: Sequence[str | bytes],
    unfinished: list[dict[str, Any]],
) -> None:
    """Publish ``reports``, drop every lease and queue ``unfinished`` at the head, in one transaction.

    An interrupted task runs again from the start with the same token (at least once, as on
    Lambda); only one of its reports can be taken.
    """
    keys = SharedKeys(prefix)
    with connection.pipeline(transaction=True) as pipe:
        if unfinished:
            job_id, fields = rq_job_fields(unfinished, keys)  # type: ignore[arg-type]
            pipe.hset(SharedKeys.rq_job(job_id), mapping={name: str(value) for name, value in fields.items()})
            pipe.lpush(keys.task_queue, job_id)
            pipe.sadd(RQ_QUEUES, keys.task_queue)
        publish_reports(pipe, events_key, reports, leases, keys.leases)
        pipe.execute()


def invoke_all(
    tasks: Iterable[dict[str, Any]],
    *,
    connection: Redis,
    prefix: str,
    limit: TimeLimit,
    registry: FunctionRegistry,
    own_timeouts: bool = False,
) -> Iterator[tuple[dict[str, Any], tuple[TaskReport, str] | None]]:
    """Each addressable task with its report and the report's JSON; once the job's time is up, the
    rest time out unrun.

    With ``own_timeouts`` (the job's time came from its tasks' TimeoutSeconds), a task still
    running when the time is up, and those after it, get no report (None): each is past its own
    TimeoutSeconds, so its execution's timer fails it as States.Timeout, and a report could only
    race that timer. Their leases go with the job's other reports.
    """
    timed_out = False
    for task in tasks:
        if timed_out:
            yield task, None if own_timeouts else encode(timeout_report(task, limit.seconds, started=False))
            continue
        context = context_for(task, connection=connection, prefix=prefix, deadline=limit.deadline)
        try:
            report = invoke(task, context, registry)
        except JobTimeoutException:
            timed_out = True
            if own_timeouts:
                log.warning(
                    "stopped function %s of execution %s: it ran %.0f s, past its task's TimeoutSeconds",
                    task.get("function"),
                    task["execution"],
                    limit.seconds,
                )
                yield task, None
                continue
            report = timeout_report(task, limit.seconds, started=True, request_id=context.aws_request_id)
        yield task, encode(report)


def is_addressable(task: object) -> bool:
    """Whether ``task`` names the execution and token a report must carry."""
    return (
        isinstance(task, dict)
        and isinstance(task.get("execution"), str)
        and isinstance(task.get("token"), str)
    )


def context_for(
    task: Task | dict[str, Any], *, connection: Redis, prefix: str, deadline: float
) -> LambdaContext:
    """The ``context`` object for one invocation of ``task``'s function."""
    name = str(task.get("function") or "")
    return LambdaContext(
        function_name=name,
        invoked_function_arn=str(task.get("function_arn") or function_arn(name)),
        deadline=deadline,
        redis=connection,
        prefix=prefix,
        execution=task["execution"],
        attempt=int(task.get("attempt") or 0),
    )


def invoke(task: Task | dict[str, Any], context: LambdaContext, registry: FunctionRegistry) -> TaskReport:
    """Call the task's registered function with ``(payload, context)`` and say how it went.

    The worker's own stops (a cold shutdown, RQ's job timeout) go on up; whatever else the
    function does, even ``sys.exit()``, ends only its task.
    """
    function = registry.lookup(context.function_name)
    outcome = invocation.invoke(
        function, task.get("payload"), context, let_through=(JobTimeoutException, ColdShutdown)
    )
    report = {"type": outcome["type"], "execution": task["execution"], "token": task["token"]}
    return {**report, **outcome}  # type: ignore[typeddict-item]


def failure(task: Task | dict[str, Any], error: str, cause: str) -> TaskReport:
    """A TaskFailed report for ``task``."""
    return {
        "type": "TaskFailed",
        "execution": task["execution"],
        "token": task["token"],
        "error": error,
        "cause": cause,
    }


def encode(report: TaskReport) -> tuple[TaskReport, str]:
    """``report`` and its JSON; an output JSON cannot carry becomes a Runtime.MarshalError failure.

    invoke's outputs are JSON already; this guards the line against anything else.
    """
    try:
        return report, json.dumps(report, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        report = failure(report, *marshal_error(exc))
        return report, json.dumps(report, separators=(",", ":"))


def timeout_report(
    task: Task | dict[str, Any], seconds: float, *, started: bool, request_id: str | None = None
) -> TaskReport:
    """A Sandbox.Timedout failure, worded as Lambda words a function that ran out of time."""
    request_id = request_id or str(uuid.uuid4())
    what = "Task timed out" if started else "Task not started: its job timed out"
    message = f"RequestId: {request_id} Error: {what} after {seconds:.2f} seconds"
    return failure(task, TIMEOUT_ERROR, error_document(TIMEOUT_ERROR, message, request_id))


# lua/append_reports.lua: one command for a job's reports and their leases; sent directly on a
# client's own connection (worker.direct_calls), through a pipeline as one of its commands.
_append_reports: Script | None = None


def publish_reports(
    connection: Redis | Pipeline,
    events_key: str,
    reports: list[str],
    leases: Sequence[str | bytes] = (),
    leases_key: str = "",
    counts: tuple[list[str], list[str]] = ([], []),
    recorded: Sequence[EncodableT] = NO_COMMANDS,
) -> None:
    """Append each JSON report to the event stream, in order, and remove ``leases``, in one script call.

    ``counts`` is a TaskMeter's ``script_arguments``: the metrics added in the same call;
    ``recorded``, writes recorded for the job's end (worker.bookkeeping), applied in it too.
    """
    global _append_reports
    if not reports and not leases and tuple(recorded) == NO_COMMANDS:
        return
    keys = [events_key, leases_key or events_key, *counts[0]]
    args = [EVENT_FIELD, len(reports), *reports, *counts[1], *recorded, *leases]
    if not isinstance(connection, Pipeline):
        direct_script(connection, "append_reports")(keys, args)
        return
    if _append_reports is None:
        _append_reports = lua_script(connection, "append_reports")
    _append_reports(keys=keys, args=args, client=connection)
