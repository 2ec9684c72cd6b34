"""Run one execution in-process, with no Redis and no real waiting.

The same core the orchestrator drives runs here with a virtual clock: Wait states, retry
back-off and timeouts pass instantly, so a test of a state machine takes milliseconds.
Functions are plain Python callables with the Lambda handler signature ``(event, context)``.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from orchestrator import nested_executions, services
from orchestrator.asl.definition import StateMachine
from orchestrator.asl.engine import start_execution
from orchestrator.asl.history import RawEvent, history_events
from orchestrator.asl.resources import START_EXECUTION
from orchestrator.protocol.invocation import (
    FUNCTION_TIMEOUT_SECONDS,
    Function,
    LambdaContext,
    error_document,
    invoke,
    json_copy,
)
from orchestrator.services import Targets


@dataclass
class LocalResult:
    """How a local execution ended, in the shape ``redstep run --json`` prints."""

    status: str
    output: Any
    error: str | None
    cause: str | None
    execution_arn: str
    # The history as the core recorded it; ``history`` gives it in AWS's shape.
    events: list[RawEvent] = field(default_factory=list, repr=False)
    # What the execution's sns:publish and sqs:sendMessage tasks sent: kind, target, payload.
    effects: list[dict[str, Any]] = field(default_factory=list)

    @functools.cached_property
    def history(self) -> list[dict[str, Any]]:
        """The events of the execution, in the shape of AWS's GetExecutionHistory."""
        return history_events(self.events)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "cause": self.cause,
            "executionArn": self.execution_arn,
            "history": self.history,
        }


# What a function name runs: the function (None when there is none), its ARN, its virtual duration.
_Target = tuple[Function | None, str, float]
# How deep executions started by executions may nest here: each level runs inside its parent's
# call, so a machine that starts itself without end would exhaust Python's stack instead.
MAX_NESTING = 20


class LocalRunner:
    """Drives executions of one state machine to their end on a virtual clock.

    ``machines`` are the state machines its ``states:startExecution`` tasks may start, by name;
    a nested execution runs to its end, on the same virtual clock, as it is started.
    """

    def __init__(
        self,
        machine: StateMachine,
        functions: Mapping[str, Function] | None = None,
        machines: Mapping[str, StateMachine] | None = None,
        targets: Targets | None = None,
    ) -> None:
        self.machine = machine
        # Which queues and topics its service tasks may send to; None: any (a local run has none).
        self.targets = targets
        # Fixed once made: what each name runs is looked up once, then remembered.
        self.functions: Mapping[str, Function] = MappingProxyType(dict(functions or {}))
        self.machines: Mapping[str, StateMachine] = MappingProxyType(dict(machines or {}))
        self._children: dict[str, LocalRunner] = {}
        self._child_names: set[str] = set()
        self._depth = 0  # how many executions this runner's executions were started by
        # Execution names are UUID-shaped and unique: one random prefix, then a count,
        # which costs far less than a fresh UUID for every execution.
        self._name_prefix = str(uuid.uuid4())[:24]
        self._names = itertools.count(1)
        self.sequence = itertools.count()
        self._targets: dict[tuple[str, str], _Target] = {}

    def run(self, input: Any, *, name: str | None = None, start: float | None = None) -> LocalResult:
        now = time.time() if start is None else start
        name = name or f"{self._name_prefix}{next(self._names):012x}"
        course = VirtualCourse(self, now, name)
        step = start_execution(self.machine, name, input, now, in_process=course)
        execution = step.execution
        return LocalResult(
            execution["status"],
            execution["output"],
            execution["error"],
            execution["cause"],
            execution["arn"],
            step.events,
            course.effects,
        )

    def _invoke(self, action: dict[str, Any], target: _Target, course: VirtualCourse) -> dict[str, Any]:
        """Run the function a RunTask action names, as a worker would; the event that reports how it went.

        Its remaining time counts down on the virtual clock, which stands still while it runs.
        """
        function, arn, _ = target
        # Arguments by position: keywords would cost as much again as making it, on every call.
        deadline = course.now + FUNCTION_TIMEOUT_SECONDS
        context = LambdaContext(
            action["function"], arn, deadline, course.virtual_time, course.execution, action["attempt"]
        )
        # The event travels as JSON, as a worker's would: the function cannot touch the execution's data.
        report: dict[str, Any] = invoke(function, json_copy(action["payload"]), context)  # type: ignore[assignment]
        report["token"] = action["token"]
        return report

    def _target(self, name: str, arn: str) -> _Target:
        """The function called ``name``, the ARN its context names, and the virtual time it takes."""
        key = (name, arn)
        target = self._targets.get(key)
        if target is None:
            function = self.functions.get(name)
            delay = float(getattr(function, "virtual_duration_seconds", 0.0))
            target = self._targets[key] = (function, arn, delay)
        return target

    def _start_child(
        self, action: dict[str, Any], course: VirtualCourse
    ) -> list[tuple[float, dict[str, Any]]]:
        """Run the execution a ``states:startExecution`` task starts; its reports, by when they come."""
        token, now = action["token"], course.now
        sdk = bool(action.get("sdk"))
        request = nested_executions.start_request(action.get("parameters"), int(action.get("sync", 0)), sdk)
        if isinstance(request, dict):
            return [(now, {**request, "token": token})]
        machine = self.machines.get(request.machine)
        if machine is None:
            return [(now, {**nested_executions.machine_missing(request.machine, sdk), "token": token})]
        if self._depth >= MAX_NESTING:
            cause = (
                f"the local runner runs executions started by executions at most {MAX_NESTING} deep;"
                f" starting {request.machine!r} would go deeper (a machine that starts itself without end?)"
            )
            return [(now, {"type": "TaskFailed", "error": "States.Runtime", "cause": cause, "token": token})]
        if request.name in self._child_names:
            refusal = nested_executions.already_exists(request.machine, request.name, sdk)
            return [(now, {**refusal, "token": token})]
        self._child_names.add(request.name)
        runner = self._children.get(request.machine)
        if runner is None:
            runner = LocalRunner(machine, self.functions, self.machines, self.targets)
            self._children[request.machine] = runner
            runner._child_names = self._child_names  # one namespace of names, as in one account
            runner._depth = self._depth + 1
        result = runner.run(request.input, name=request.name, start=now)
        course.effects.extend(result.effects)
        child = {
            "arn": result.execution_arn,
            "name": request.name,
            "stateMachine": request.machine,
            "input": request.input,
            "output": result.output,
            "error": result.error,
            "cause": result.cause,
            "status": result.status,
            "startDate": now,
            "stopDate": result.events[-1][2] if result.events else now,
        }
        reports = [(now, {**nested_executions.started(child, request.sync, sdk), "token": token})]
        if request.sync:
            reports.append(
                (child["stopDate"], {**nested_executions.ended(child, request.sync), "token": token})
            )
        return reports

    def _service(self, action: dict[str, Any], effects: list[dict[str, Any]], now: float) -> dict[str, Any]:
        report, effect = services.carry_out(action, now, self.targets)
        if effect is not None:
            effects.append({"kind": effect.kind, "target": effect.target, "payload": effect.payload})
            if effect.attributes:
                effects[-1]["attributes"] = effect.attributes
            if effect.message_id:  # the id the task's result names, which the message is sent under
                effects[-1]["message_id"] = effect.message_id
        return {**report, "token": action["token"]}


TIMED_OUT_ERROR = "Sandbox.Timedout"


def timed_out(action: dict[str, Any]) -> dict[str, Any]:
    """The report of a function that ran past Lambda's timeout, worded as Lambda words it
    ("Troubleshoot invocation issues in Lambda", AWS Lambda Developer Guide: "Task timed out
    after ... seconds") and as a worker reports it."""
    request_id = str(uuid.uuid4())
    message = f"RequestId: {request_id} Error: Task timed out after {FUNCTION_TIMEOUT_SECONDS:.2f} seconds"
    return {
        "type": "TaskFailed",
        "error": TIMED_OUT_ERROR,
        "cause": error_document(TIMED_OUT_ERROR, message, request_id),
        "token": action["token"],
    }


class VirtualCourse:
    """Carries out one execution's actions on the virtual clock, for the core to run it in one call."""

    __slots__ = ("due", "effects", "execution", "now", "runner", "sequence")

    def __init__(self, runner: LocalRunner, now: float, execution: str = "") -> None:
        self.runner = runner
        self.now = now
        self.execution = execution
        self.effects: list[dict[str, Any]] = []
        # Events to deliver, by the virtual time they happen; the runner's count keeps events
        # of the same moment in the order their actions were decided.
        self.due: list[tuple[float, int, dict[str, Any]]] = []
        self.sequence = runner.sequence

    def run_task_now(self, action: dict[str, Any]) -> dict[str, Any] | None:
        if self.due and self.due[0][0] <= self.now:
            return None  # something already due happens first
        target = self.runner._target(action["function"], action["function_arn"])
        if target[2]:
            return None  # the task takes virtual time, in which something else may happen
        return self.runner._invoke(action, target, self)

    def virtual_time(self) -> float:
        """The virtual clock's reading: the time a function's context counts down on."""
        return self.now

    def next_event(self, actions: list[dict[str, Any]]) -> tuple[float, dict[str, Any]] | None:
        due, now = self.due, self.now
        for action in actions:
            kind = action["type"]
            if kind == "RunTask":
                target = self.runner._target(action["function"], action["function_arn"])
                if target[2] > FUNCTION_TIMEOUT_SECONDS:
                    # Lambda stops a function at its timeout, as a worker's job timeout does.
                    event = timed_out(action)
                    heapq.heappush(due, (now + FUNCTION_TIMEOUT_SECONDS, next(self.sequence), event))
                    continue
                event = self.runner._invoke(action, target, self)
                heapq.heappush(due, (now + target[2], next(self.sequence), event))
            elif kind == "RunService" and action["service"] == START_EXECUTION:
                for when, report in self.runner._start_child(action, self):
                    heapq.heappush(due, (when, next(self.sequence), report))
            elif kind == "RunService":
                event = self.runner._service(action, self.effects, now)
                heapq.heappush(due, (now, next(self.sequence), event))
            elif kind == "SetTimer":
                timer = {"type": "TimerFired", "token": action["token"]}
                heapq.heappush(due, (action["due"], next(self.sequence), timer))
            # A cancelled timer may stay queued: when it fires, nobody waits on its token.
        actions.clear()
        if not due:
            return None
        when, _, event = heapq.heappop(due)
        self.now = max(now, when)
        return self.now, event
