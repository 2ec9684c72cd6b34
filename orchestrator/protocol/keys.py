"""The Redis keys both a worker and the orchestrators touch (``{p}`` is the configured prefix).

Every other key is the orchestrators' own: :mod:`orchestrator.runtime.keys` lists every key
redstep uses, these included, and builds them with a subclass of :class:`SharedKeys`.

The task queue (RQ)
    ``<p>-tasks``               the RQ queue name; RQ keeps it in ``rq:queue:<p>-tasks``, jobs in
                                ``rq:job:<id>`` and the set of queues in ``rq:queues``. The
                                orchestrators enqueue jobs built by protocol.jobs; a worker that
                                stops mid-job enqueues the unfinished tasks the same way.
Workers
    ``{p}:workers``             set of live worker names (a worker adds itself; a reaper removes it)
    ``{p}:worker:<name>``       string with a TTL of ``lease_seconds``: the worker is alive
    ``{p}:claimed:<name>``      list of RQ job ids the worker dequeued and has not started yet
    ``{p}:leases``              zset of task leases: member = a lease record (JSON, see
                                protocol.leases) naming the execution, token and worker, scored by
                                when the lease runs out by Redis's ``TIME``. The worker sets and
                                renews them (its Lua scripts read TIME), removes them with its
                                reports; the orchestrators fire the expired ones as TaskFailed
                                (Lambda.Unknown) events (runtime/lua/fire_timers.lua).
    ``{p}:dragons``             hash: dragon name -> record JSON (the dragon functions' store)
What a worker writes for the orchestrators
    ``{p}:events``              stream of events for executions; one field, ``event``, holding JSON:
                                a worker appends its TaskSucceeded, TaskFailed and TaskHeartbeat
                                reports (protocol.tasks.TaskReport)
    ``{p}:malformed``           stream of entries moved aside: ``stream``, ``id``, ``reason``,
                                ``fields``; a worker moves a job it cannot run here
    ``{p}:exec:{<name>}``       an execution's hash; a worker only asks whether it exists (it fails
                                the tasks of an unreadable job only for executions that do)
    ``{p}:metrics``             hash of counters (protocol.metrics): a worker adds its tasks'
                                durations and failures with its reports
"""

from __future__ import annotations

EVENT_FIELD = "event"
"""The one field of an entry on the event stream: the event's JSON."""

RQ_QUEUES = "rq:queues"
RQ_QUEUE_PREFIX = "rq:queue:"
RQ_JOB_PREFIX = "rq:job:"


class SharedKeys:
    """The keys of one redstep installation that a worker touches, all under ``prefix``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def execution(self, name: str) -> str:
        return f"{self.prefix}:exec:{{{name}}}"

    @property
    def events(self) -> str:
        return f"{self.prefix}:events"

    @property
    def malformed(self) -> str:
        return f"{self.prefix}:malformed"

    @property
    def task_queue_name(self) -> str:
        return f"{self.prefix}-tasks"

    @property
    def task_queue(self) -> str:
        return f"{RQ_QUEUE_PREFIX}{self.task_queue_name}"

    @staticmethod
    def rq_job(job_id: str) -> str:
        return f"{RQ_JOB_PREFIX}{job_id}"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    def alive(self, worker: str) -> str:
        return f"{self.prefix}:worker:{worker}"

    def claimed(self, worker: str) -> str:
        return f"{self.prefix}:claimed:{worker}"

    @property
    def leases(self) -> str:
        return f"{self.prefix}:leases"

    @property
    def dragons(self) -> str:
        return f"{self.prefix}:dragons"
