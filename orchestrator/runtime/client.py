"""The API the CLI and tests use: register machines, start and inspect executions, see the stack."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis
from rq import Queue, Worker
from rq.serializers import JSONSerializer

from orchestrator.asl import engine, errors
from orchestrator.runtime import heartbeats, histories, transitions
from orchestrator.runtime.clock import RedisClock
from orchestrator.runtime.keys import GROUP, STATUSES, Keys
from orchestrator.runtime.lone_failures import LoneFailures, blames_shared_keys, is_server_state
from orchestrator.runtime.machines import MachineCache, register_machine
from orchestrator.runtime.optimistic import Attempt, Lost, commit_optimistically
from orchestrator.runtime.sources import message_id_problem
from orchestrator.runtime.store import CommitRefused, Conflict, Store
from orchestrator.runtime.targets import ServiceTargets
from orchestrator.settings import Settings

TERMINAL = frozenset(STATUSES) - {"RUNNING"}


class ExecutionNotFound(LookupError):
    """No execution has the name asked for."""


class NotRedrivable(ValueError):
    """The execution cannot be redriven: it succeeded, still runs, or its machine is gone."""


class Client:
    """redstep as a library.

    Args:
        redis_client: the connection.
        settings: the prefix, queue and topic names.
    """

    def __init__(
        self, redis_client: redis.Redis, settings: Settings, clock: Callable[[], float] | None = None
    ) -> None:
        self.redis = redis_client
        self.settings = settings
        # A start sets timers (a first Wait, a timeout) that orchestrators judge by Redis's clock.
        self.clock = clock or RedisClock(redis_client)
        self.keys = Keys(settings.prefix)
        self.store = Store(redis_client, self.keys)
        # Re-reads a machine's definition on every start, as a fresh cache would, but parses
        # it again only when its text changed (a long-lived caller such as redstep serve).
        self._machines = MachineCache(redis_client, self.keys, refresh_seconds=0)

    # -- state machines and executions ---------------------------------------------------------

    def register_machine(self, name: str, definition: dict[str, Any] | str) -> None:
        """Store a definition under ``name``; an invalid one raises DefinitionError, storing nothing."""
        register_machine(self.redis, self.keys, name, definition)

    def start_execution(self, machine: str, input: Any, name: str | None = None) -> str:
        """Start an execution of ``machine`` and return its name; an existing name starts nothing.

        An unregistered machine still gets an execution, which ends FAILED saying so; so does a
        start whose commit Redis refuses (States.Runtime, with Redis's error as the cause).

        Raises:
            ValueError: ``name`` breaks the rule for execution names (as a message id's), or
                ``input`` is not JSON (a NaN, an infinity), before anything is written.
            CommitConflict: other writers kept changing the name's execution (never in practice:
                after one lost race it exists, and this call returns its name).
        """
        if name is not None and (problem := message_id_problem(name)):
            raise ValueError(f"the execution name {problem}")
        try:
            json.dumps(input, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the execution input is not JSON: {exc}") from None
        name = name or str(uuid.uuid4())

        def attempt(_: Attempt) -> str | Lost:
            if self.store.load([name])[name][0] is not None:
                return name
            transition = self._start(machine, name, input)
            commit = self.store.new_commit()
            commit.expect_version(name, 0)
            transitions.record(commit, transition, 0, self.settings)
            commit.enqueue_tasks(transition.tasks)
            try:
                conflicts = self.store.commit(commit)
            except (redis.ResponseError, ValueError) as exc:
                if is_server_state(exc) or blames_shared_keys(exc, name):
                    raise  # not this execution's fault: nothing was written, the caller hears why
                cause = f"the commit of the execution's start failed: {exc}"
                failures = LoneFailures(self.store, self.settings, clock=self.clock)
                failures.fail_start(name, machine, input, None, [], cause)
                return name
            return Lost(conflicts) if conflicts else name

        return commit_optimistically(f"the start of execution {name}", attempt)

    def start_new_execution(
        self, machine: str, input: Any, name: str, version: str | None = None, *, notify_end: bool = False
    ) -> bool:
        """Start an execution of ``machine`` called ``name``; False when the name is already taken.

        As :meth:`start_execution`, but says whether this call is the one that started it, so a
        caller can tell a repeated request from a name someone else holds. With ``version`` (a
        registered definition's content version), it runs that definition, not the current one.
        With ``notify_end`` its end is announced for :mod:`orchestrator.runtime.sync_executions`
        to wait on.

        Raises:
            ValueError: ``name`` breaks the rule for execution names, before anything is written.
            CommitConflict: other writers kept changing the name's execution.
        """
        if problem := message_id_problem(name):
            raise ValueError(f"the execution name {problem}")

        def attempt(_: Attempt) -> bool | Lost:
            if self.store.load([name])[name][0] is not None:
                return False
            transition = self._start(
                machine, name, input, self._machines, version=version, notify_end=notify_end
            )
            commit = self.store.new_commit()
            commit.expect_version(name, 0)
            transitions.record(commit, transition, 0, self.settings)
            commit.enqueue_tasks(transition.tasks)
            conflicts = self.store.commit(commit)
            return Lost(conflicts) if conflicts else True

        return commit_optimistically(f"the start of execution {name}", attempt)

    def _start(
        self,
        machine_name: str,
        name: str,
        input: Any,
        machines: MachineCache | None = None,
        version: str | None = None,
        notify_end: bool = False,
    ) -> transitions.Transition:
        now = self.clock()
        cache = machines or MachineCache(self.redis, self.keys, refresh_seconds=0)
        machine = cache.get(machine_name, version)
        if machine is None:
            cause = f"State Machine Does Not Exist: '{machine_name}' (no definition is registered under it)"
            return transitions.fail(name, machine_name, input, errors.RUNTIME, cause, now)
        targets = ServiceTargets(self.redis, self.settings, remember_seconds=0)
        return transitions.start(machine, name, input, now, notify_end=notify_end, targets=targets)

    def redrive(self, name: str) -> dict[str, Any]:
        """Restart a FAILED, TIMED_OUT or ABORTED execution from the state where it stopped.

        As AWS's RedriveExecution: the same execution runs on, its history goes on with
        ExecutionRedriven. The step commits like any transition: only if no one moved the
        execution on meanwhile, with its history, its tasks and its status index, at once.

        Returns:
            The execution as DescribeExecution shows it right after the redrive.

        Raises:
            ExecutionNotFound: when there is no execution of that name.
            NotRedrivable: when it succeeded or still runs, or its machine is not registered, or
                Redis refused the redrive's commit (the execution is left as it was).
            CommitConflict: the execution kept changing while it was being redriven.
        """

        def attempt(_: Attempt) -> dict[str, Any] | Lost:
            execution, version = self.store.load([name])[name]
            if execution is None:
                raise ExecutionNotFound(name)
            histories.expand(self.redis, self.keys.history(name))  # the redrive appends to it
            machine_name = execution["stateMachine"]
            machines = MachineCache(self.redis, self.keys, refresh_seconds=0)
            machine = machines.get(machine_name, execution.get("machineVersion"))
            if machine is None:
                raise NotRedrivable(f"state machine {machine_name} of execution {name} is not registered")
            now, previous = self.clock(), execution["status"]
            try:
                step = engine.redrive_execution(machine, execution, now)
            except ValueError as exc:
                raise NotRedrivable(str(exc)) from None
            targets = ServiceTargets(self.redis, self.settings, remember_seconds=0)
            transition = transitions.Transition(step.execution, previous, targets=targets)
            transitions.settle(machine, transition, step, now)
            commit = self.store.new_commit()
            commit.expect_version(name, version)
            transitions.record(commit, transition, version, self.settings)
            commit.enqueue_tasks(transition.tasks)
            try:
                conflicts = self.store.commit(commit)
            except CommitRefused as refused:
                history = self.keys.history(name)
                if refused.keys == [history] and histories.expand(self.redis, history):
                    # An orchestrator compacted the history again between its expansion and this
                    # commit (the execution still read as stopped): expanded again, try again.
                    return Lost([Conflict("wrongtype", history)])
                raise NotRedrivable(f"the redrive of {name} could not be committed: {refused}") from None
            except (redis.ResponseError, ValueError) as exc:
                if is_server_state(exc):
                    raise
                # The script wrote nothing: the execution stays as it stopped.
                raise NotRedrivable(f"the redrive of {name} could not be committed: {exc}") from None
            return Lost(conflicts) if conflicts else summary(transition.execution)

        return commit_optimistically(f"the redrive of execution {name}", attempt)

    def stop_execution(self, name: str, error: str | None = None, cause: str | None = None) -> None:
        """Ask the orchestrators to abort a running execution."""
        event = {"type": "StopExecution", "execution": name, "error": error, "cause": cause}
        self.redis.xadd(self.keys.events, {"event": json.dumps(event)})

    def describe(self, name: str) -> dict[str, Any] | None:
        """The execution as DescribeExecution shows it, or None when there is none of that name."""
        execution = self.store.load([name])[name][0]
        return None if execution is None else summary(execution)

    def list_executions(self, status: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Executions, newest first, optionally of one status."""
        index = self.keys.status(status) if status else self.keys.executions
        names = [n.decode() for n in self.redis.zrevrange(index, 0, limit - 1)]
        loaded = self.store.load(names)
        return [summary(loaded[n][0]) for n in names if loaded[n][0] is not None]

    def describe_many(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """The executions of ``names`` that exist, as DescribeExecution shows them, in one round trip."""
        loaded = self.store.load(names)
        return {name: summary(loaded[name][0]) for name in names if loaded[name][0] is not None}

    def execution_index(
        self, status: str | None, before: tuple[float, str] | None, count: int
    ) -> list[tuple[str, float]]:
        """Up to ``count`` (name, start time) entries of the index, newest first.

        With ``before``, only the entries after it in that order: a cursor that stays right
        while new executions start.
        """
        index = self.keys.status(status) if status else self.keys.executions
        if before is None:
            rows = self.redis.zrevrangebyscore(index, "+inf", "-inf", start=0, num=count, withscores=True)
            return [(member.decode(), score) for member, score in rows]
        score, name = before
        # Equal start times come in reverse name order, as ZREVRANGEBYSCORE gives them.
        ties = self.redis.zrangebyscore(index, repr(score), repr(score), withscores=True)
        entries = sorted(((m.decode(), s) for m, s in ties if m.decode() < name), reverse=True)[:count]
        if len(entries) < count:
            rows = self.redis.zrevrangebyscore(
                index, f"({score!r}", "-inf", start=0, num=count - len(entries), withscores=True
            )
            entries += [(member.decode(), s) for member, s in rows]
        return entries

    def history_length(self, name: str) -> int:
        """How many events the execution's history holds (0 when there is none), compacted or not."""
        return histories.history_length(self.redis, self.keys.history(name))

    def history_range(self, name: str, start: int, stop: int) -> list[dict[str, Any]]:
        """The history events at positions ``start`` to ``stop`` (inclusive, from 0)."""
        return histories.history_range(self.redis, self.keys.history(name), start, stop)

    def history(self, name: str) -> list[dict[str, Any]]:
        """The execution's events, in GetExecutionHistory shape (empty when there is none)."""
        return histories.history_range(self.redis, self.keys.history(name), 0, -1)

    def wait(self, name: str, timeout: float, poll_seconds: float = 0.02) -> dict[str, Any]:
        """The execution once it is no longer RUNNING.

        Raises:
            TimeoutError: when it still runs after ``timeout`` seconds.
            ExecutionNotFound: when it does not exist by then.
        """
        deadline = time.monotonic() + timeout
        while True:
            described = self.describe(name)
            if described and described["status"] in TERMINAL:
                return described
            if time.monotonic() > deadline:
                if described is None:
                    raise ExecutionNotFound(name)
                raise TimeoutError(f"execution {name} still {described['status']} after {timeout}s")
            time.sleep(poll_seconds)

    # -- the stack -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Queue depths (with what is pending), dead letters, the task queue, workers, executions."""
        queue = self.keys.queue(self.settings.source_queue)
        pipe = self.redis.pipeline(transaction=False)
        pipe.xlen(queue)
        pipe.xlen(self.keys.dead_letters(self.settings.source_queue))
        pipe.xlen(self.keys.events)
        pipe.zcard(self.keys.timers)
        pipe.xlen(self.keys.malformed)
        for status in STATUSES:
            pipe.zcard(self.keys.status(status))
        depth, dead, events, timers, malformed, *counts = pipe.execute()
        task_queue = Queue(self.keys.task_queue_name, connection=self.redis, serializer=JSONSerializer)
        return {
            "queue": {
                "name": self.settings.source_queue,
                "depth": depth,
                "pending": self._pending(queue),
                "dead_letters": dead,
            },
            "events": {"depth": events, "pending": self._pending(self.keys.events)},
            "timers": timers,
            "malformed": malformed,
            "tasks": {"queue": task_queue.name, "depth": task_queue.count},
            "workers": [w.name for w in Worker.all(queue=task_queue)],
            "orchestrators": self.orchestrators(),
            "executions": dict(zip(STATUSES, counts, strict=True)),
        }

    def _pending(self, stream: str) -> int:
        try:
            return int(self.redis.xpending(stream, GROUP)["pending"])
        except redis.ResponseError:  # no group yet: nothing was ever pulled
            return 0

    def orchestrators(self) -> list[str]:
        """The consumers whose heartbeat has not expired."""
        return heartbeats.alive(self.redis, self.keys)

    def healthy(self) -> tuple[bool, str]:
        """Whether Redis answers and at least one orchestrator beat recently, and why not."""
        try:
            self.redis.ping()
        except redis.RedisError as exc:
            return False, f"Redis unreachable: {exc}"
        alive = self.orchestrators()
        if not alive:
            return False, "no orchestrator has sent a heartbeat recently"
        return True, f"Redis reachable; {len(alive)} orchestrator(s) alive"


def summary(execution: dict[str, Any]) -> dict[str, Any]:
    """An execution as DescribeExecution shows it."""
    return {
        "name": execution["name"],
        "executionArn": execution["arn"],
        "stateMachine": execution["stateMachine"],
        # The registered definition it runs on (see runtime.machines); None if started before versions.
        "stateMachineVersion": execution.get("machineVersion"),
        "status": execution["status"],
        "input": execution.get("input"),
        "output": execution.get("output"),
        "error": execution.get("error"),
        "cause": execution.get("cause"),
        "startDate": execution.get("startDate"),
        "stopDate": execution.get("stopDate"),
        "redriveCount": execution.get("redriveCount", 0),
    }
