"""The RQ job class a redstep worker accepts: JSON only, run_tasks only, and decoded strictly.

RQ resolves a job's function and callbacks by importing the dotted names the job carries.
A worker that took any name would run whatever a writer to its queue asked for, so this
class runs ``worker.entry.run_tasks`` and nothing else, and never imports a callback.

Anyone who can write ``rq:*`` (the app's ACL user, another RQ application on the same
Redis) can put anything under a job id: a string, a hash with a date RQ cannot parse,
pickled data, another application's job. RQ's own decoding raises whatever its parsers
raise, and its work loop quits on that; here every way a job can be unfit to run is one
error, MalformedJob, which the queue moves aside (worker.bad_jobs) instead of dying on it.
"""

from __future__ import annotations

import contextlib
import json
import re
import zlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any

from redis import Redis, ResponseError
from rq.exceptions import NoSuchJobError
from rq.job import Job, _job_stack, validate_job_id
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from orchestrator.protocol.jobs import TASK_ENTRY_POINT, rq_job_fields
from orchestrator.protocol.keys import SharedKeys
from worker.entry import WorkerContext, is_addressable, run_tasks

SERIALIZER = JSONSerializer
"""Jobs are JSON at rest; a pickled job fails to decode and is never unpickled."""

# signal.alarm, which enforces a job's timeout, takes a C unsigned int; -1 is RQ's "none".
LONGEST_TIMEOUT_SECONDS = 2**31 - 1
# A job carries at most 50 tasks (orchestrator.runtime.store); a forged one may claim more.
MOST_TASKS_FAILED = 50


class MalformedJob(Exception):
    """A job on the task queue that a redstep worker will not run, and why.

    Attributes:
        job_id: the id as it came off the queue.
        reason: what is wrong with it, for the malformed stream and the log.
        tasks: the addressable tasks its data names, if any could be read: their executions
            are told the task failed, so they move on through Retry and Catch.
    """

    def __init__(self, job_id: str, reason: str, tasks: list[dict[str, Any]] | None = None) -> None:
        super().__init__(f"job {job_id!r}: {reason}")
        self.job_id = job_id
        self.reason = reason
        self.tasks = tasks or []


class ForbiddenJob(Exception):
    """The job asks for something other than run_tasks, so it is failed without running."""


class TaskJob(Job):
    """An RQ job that can only run ``run_tasks``, refused as MalformedJob when it is anything else.

    Its serializer is always SERIALIZER, set rather than resolved: RQ checks a serializer it is
    given against its Serializer protocol in every Job and registry it builds (about 17 us each
    on Python 3.11), several times a job.
    """

    def __init__(
        self, id: str | None = None, connection: Redis | None = None, serializer: Any = None
    ) -> None:
        super().__init__(id, connection)
        self.serializer = SERIALIZER

    @property
    def started_job_registry(self) -> StartedJobRegistry:
        """RQ's registry of the jobs started on the job's queue, with the job's serializer set."""
        registry = StartedJobRegistry(self.origin, connection=self.connection, job_class=type(self))
        registry.serializer = SERIALIZER
        return registry

    def refresh(self) -> None:
        """Read the job's hash; a key of another type is a MalformedJob, not a crash.

        Raises:
            NoSuchJobError: when the key does not exist (RQ's own meaning, which its
                registries rely on).
            MalformedJob: when the key holds no hash or the hash is no task job.
        """
        try:
            data = self.connection.hgetall(self.key)
        except ResponseError as exc:
            if "WRONGTYPE" not in str(exc):
                raise
            raise MalformedJob(self.id, f"its key {self.key} holds no hash") from None
        if not data:
            raise NoSuchJobError(f"No such job: {self.key}")
        self.restore(data)

    def restore(self, raw_data: Mapping[Any, Any]) -> None:
        """Load the job from its hash, refusing anything but a well-formed task job.

        Raises:
            MalformedJob: with the reason, whatever RQ's parsers made of the hash.
        """
        try:
            super().restore(raw_data)
        except NoSuchJobError:
            raise MalformedJob(self.id, "its hash has no 'data' field", tasks_named_by(raw_data)) from None
        except Exception as exc:
            reason = f"RQ cannot read its hash: {describe(exc)}"
            raise MalformedJob(self.id, reason, tasks_named_by(raw_data)) from None
        problem = self.unfit_to_run()
        if not problem and (self.webhooks or raw_data.get(b"webhooks", raw_data.get("webhooks"))):
            problem = "it names webhooks, which a redstep worker never calls"
        if problem:
            raise MalformedJob(self.id, problem, tasks_named_by(raw_data))

    def unfit_to_run(self) -> str:
        """Why this job is not a task job a worker may run, or "" when it is one."""
        try:
            func_name, instance, args, kwargs = self.func_name, self.instance, self.args, self.kwargs
        except Exception as exc:
            return f"its data is not a JSON job: {describe(exc.__cause__ or exc)}"
        if func_name != TASK_ENTRY_POINT or instance is not None:
            named = repr(func_name)[:100]
            only = TASK_ENTRY_POINT
            return f"a job of another application: it runs {named}; a redstep worker runs only {only}"
        callbacks = [self._success_callback_name, self._failure_callback_name, self._stopped_callback_name]
        if any(callbacks):
            return f"it names job callbacks, which a redstep worker never runs: {[c for c in callbacks if c]}"
        if not (
            isinstance(args, list | tuple)
            and len(args) == 2
            and isinstance(args[0], list)
            and isinstance(args[1], str)
            and kwargs == {}
        ):
            return "its arguments are not (a list of tasks, the event stream's key)"
        timeout = self.timeout
        if timeout is not None and not -1 <= timeout <= LONGEST_TIMEOUT_SECONDS:
            return f"its timeout {timeout} is out of range (-1 to {LONGEST_TIMEOUT_SECONDS} seconds)"
        return ""

    @property
    def func(self) -> Callable[..., Any]:
        """run_tasks, when that is all the job asks for.

        Raises:
            ForbiddenJob: when the job names another function, a bound instance or a callback.
        """
        if self.func_name != TASK_ENTRY_POINT or self.instance is not None:
            raise ForbiddenJob(f"a redstep worker runs {TASK_ENTRY_POINT} only, not {self.func_name!r}")
        callbacks = [self._success_callback_name, self._failure_callback_name, self._stopped_callback_name]
        if any(callbacks):
            raise ForbiddenJob(f"a redstep worker runs no job callbacks: {[c for c in callbacks if c]}")
        return run_tasks

    persisted = False  # whether the worker's preparation persisted the key already
    started_by_take = False  # whether the worker started it as it took it (WorkerLeases.send_start)
    worker: WorkerContext | None = None  # the context of the TaskWorker that runs the job

    def _execute(self) -> Any:
        """run_tasks with the job's arguments and its worker's context (RQ calls the function bare)."""
        return self.func(*self.args, worker=self.worker, **self.kwargs)

    def perform(self) -> Any:
        """Run the job as RQ does, without persisting its key again when the preparation did.

        RQ's perform persists the key in a round trip of its own; TaskWorker's preparation
        does it in its transaction.
        """
        if not self.persisted:
            return super().perform()
        _job_stack.push(self)
        try:
            self._result = self._execute()
        finally:
            assert self is _job_stack.pop()
        return self._result

    def send_webhooks(self, status: Any, *, exc_string: str | None = None) -> None:
        """Call nothing: a job's webhooks would have a worker send requests wherever a writer chose."""

    # RQ calls these even for a job that failed before running; none is ever imported.
    @property
    def success_callback(self) -> None:
        return None

    @property
    def failure_callback(self) -> None:
        return None

    @property
    def stopped_callback(self) -> None:
        return None


def check_job_id(job_id: str) -> None:
    """Refuse an id RQ would misread (it takes ``a:b`` for job ``a``).

    Raises:
        MalformedJob: when ``job_id`` is not letters, digits, ``_`` and ``-``.
    """
    try:
        validate_job_id(job_id)
    except (TypeError, ValueError):
        raise MalformedJob(job_id, "not an RQ job id (letters, digits, '_' and '-' only)") from None


def decode_task_job(job_id: str, raw: Mapping[Any, Any], connection: Redis) -> TaskJob:
    """The task job that the hash ``raw`` read from ``rq:job:<job_id>`` holds.

    A hash exactly as the orchestrators write it is decoded the quick way (:func:`decoded_quickly`),
    any other by RQ's own reading.

    Raises:
        MalformedJob: when the id or the hash is anything but a task job a worker may run.
    """
    check_job_id(job_id)
    job = decoded_quickly(job_id, raw, connection)
    if job is not None:
        return job
    job = TaskJob(job_id, connection=connection, serializer=SERIALIZER)
    job.restore(raw)
    return job


# The fields of a task job the orchestrators write (protocol.jobs.rq_job_fields) that differ from
# one job to the next; every other field holds the same bytes in every job.
OWN_FIELDS = frozenset({b"created_at", b"enqueued_at", b"data", b"description", b"origin", b"timeout"})
# RQ's timestamp format (rq.utils.utcformat), digit for digit: what the orchestrators write.
_TIMESTAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
# A job timeout in whole seconds as the orchestrators write it (protocol.jobs.job_timeout_for).
_SECONDS = re.compile(rb"[1-9]\d{0,5}")


@cache
def _alike() -> tuple[dict[bytes, bytes], dict[str, Any]]:
    """The fields every orchestrators' task job shares, as Redis returns them, and what RQ reads from them.

    The attributes are those of a job RQ's own reading made of such a hash, less the ones
    OWN_FIELDS and the job's id and connection set.
    """
    _, written = rq_job_fields([], SharedKeys("q"))
    fields = {name.encode(): str(value).encode() for name, value in written.items()}
    job = TaskJob("0", connection=Redis())  # restoring does no I/O
    job.restore(fields)
    own = {"_id", "connection", "created_at", "enqueued_at", "origin", "description", "timeout"}
    own |= {"_data", "_func_name", "_instance", "_args", "_kwargs"}
    shared = {name: value for name, value in fields.items() if name not in OWN_FIELDS}
    return shared, {name: value for name, value in vars(job).items() if name not in own}


def decoded_quickly(job_id: str, raw: Mapping[Any, Any], connection: Redis) -> TaskJob | None:
    """The task job in ``raw`` when the hash is exactly as the orchestrators write it, else None.

    RQ's reading parses every field of the hash, its dates with strptime, about 60 us a job;
    here the fields every task job shares are compared with the bytes RQ's reading was run on
    once (:func:`_alike`), and only the job's own are read, as RQ reads them. Whatever differs
    in the least (another field, a date written otherwise, data RQ might read otherwise) gives
    None, and RQ's reading then accepts or refuses the hash as before.
    """
    shared, attributes = _alike()
    if len(raw) != len(shared) + len(OWN_FIELDS):
        return None
    for name, value in shared.items():
        if raw.get(name) != value:
            return None
    created, enqueued = raw.get(b"created_at"), raw.get(b"enqueued_at")
    data, description, origin = raw.get(b"data"), raw.get(b"description"), raw.get(b"origin")
    timeout = raw.get(b"timeout")
    if not (
        isinstance(timeout, bytes)
        and _SECONDS.fullmatch(timeout)
        and isinstance(created, bytes)
        and isinstance(enqueued, bytes)
        and _TIMESTAMP.fullmatch(created)
        and _TIMESTAMP.fullmatch(enqueued)
        and isinstance(data, bytes)
        and data[:1] == b"["  # not zlib's header, so RQ would read it as it is
        and isinstance(description, bytes)
        and description
        and isinstance(origin, bytes)
        and origin
    ):
        return None
    try:
        created_at = datetime.fromisoformat(created[:-1].decode()).replace(tzinfo=UTC)
        enqueued_at = datetime.fromisoformat(enqueued[:-1].decode()).replace(tzinfo=UTC)
        func_name, instance, args, kwargs = json.loads(data.decode("utf-8"))  # RQ's JSONSerializer
        texts = description.decode(), origin.decode()
    except (ValueError, RecursionError):
        return None
    job = TaskJob.__new__(TaskJob)
    state = vars(job)
    state.update(attributes)
    state["webhooks"], state["_dependency_ids"], state["meta"] = [], [], {}  # RQ's fresh ones
    state["_id"], state["connection"] = job_id, connection
    state["created_at"], state["enqueued_at"] = created_at, enqueued_at
    state["description"], state["origin"] = texts
    state["timeout"] = int(timeout)  # as RQ's parse_timeout reads whole seconds
    state["_data"], state["_func_name"], state["_instance"] = data, func_name, instance
    state["_args"], state["_kwargs"] = args, kwargs
    if job.unfit_to_run():
        return None  # RQ's reading refuses it, with the reason
    return job


def fetch_task_job(job_class: type[Job], job_id: str, connection: Redis) -> Job:
    """The task job stored under ``job_id``.

    Raises:
        NoSuchJobError: when there is none.
        MalformedJob: when what is stored there is not a task job a worker may run.
    """
    check_job_id(job_id)
    return job_class.fetch(job_id, connection=connection, serializer=SERIALIZER)


def misaddressed(job: Job, queue_name: str, events_key: str) -> MalformedJob | None:
    """Why a decoded task job does not belong on ``queue_name`` or report to ``events_key``, if so.

    Another RQ application's job pushed onto this queue still names its own queue, and a job
    that names another stream would send its tasks' reports where no orchestrator reads them.
    """
    tasks = [task for task in job.args[0] if is_addressable(task)][:MOST_TASKS_FAILED]
    if job.origin != queue_name:
        return MalformedJob(job.id, f"it belongs to queue {job.origin[:100]!r}, not {queue_name!r}", tasks)
    if job.args[1] != events_key:
        reason = f"it reports to {str(job.args[1])[:100]!r}, not to the event stream {events_key!r}"
        return MalformedJob(job.id, reason, tasks)
    return None


def tasks_named_by(raw: Mapping[Any, Any]) -> list[dict[str, Any]]:
    """The addressable tasks in a job hash's data, read as leniently as possible; [] when none.

    A job that cannot run may still say which executions wait for it; telling them lets them
    move on. The tokens fence anything forged: a report for a token nobody waits on is dropped.
    """
    try:
        data = raw.get(b"data", raw.get("data"))
        if isinstance(data, str):
            data = data.encode()
        if not isinstance(data, bytes):
            return []
        with contextlib.suppress(zlib.error):
            data = zlib.decompress(data)
        decoded = json.loads(data)
        tasks = decoded[2][0]
        if not isinstance(tasks, list):
            return []
        return [task for task in tasks if is_addressable(task)][:MOST_TASKS_FAILED]
    except Exception:
        return []


def describe(exc: BaseException) -> str:
    """``exc`` as one bounded line: its type and message."""
    message = str(exc)
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
