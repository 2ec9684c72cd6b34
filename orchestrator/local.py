"""Run one execution in-process, with no Redis and no real waiting.

The same core the orchestrator drives runs here with a virtual clock: Wait states, retry
back-off and timeouts pass instantly, so a test of a state machine takes milliseconds.
Functions are plain Python callables with the Lambda handler signature ``(event, context)``.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import json
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from orchestrator import services
from orchestrator.asl.definition import StateMachine
from orchestrator.asl.engine import start_execution
from orchestrator.asl.history import RawEvent, history_events
from orchestrator.protocol.tasks import function_not_found, lambda_error, marshal_error

Function = Callable[[Any, Any], Any]


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


@dataclass
class _Context:
    """The ``context`` argument a function receives, shaped like Lambda's."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int = 128

    @property
    def aws_request_id(self) -> str:
        return str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


# What a function name runs: the function (None when there is none), its context, its virtual duration.
_Target = tuple[Function | None, _Context, float]


class LocalRunner:
    """Drives executions of one state machine to their end on a virtual clock."""

    def __init__(self, machine: StateMachine, functions: dict[str, Function] | None = None) -> None:
        self.machine = machine
        # Fixed once made: what each name runs is looked up once, then remembered.
        self.functions: Mapping[str, Function] = MappingProxyType(dict(functions or {}))
        # Execution names are UUID-shaped and unique: one random prefix, then a count,
        # which costs far less than a fresh UUID for every execution.
        self._name_prefix = str(uuid.uuid4())[:24]
        self._names = itertools.count(1)
        self.sequence = itertools.count()
        self._targets: dict[tuple[str, str], _Target] = {}

    def run(self, input: Any, *, name: str | None = None, start: float | None = None) -> LocalResult:
        now = time.time() if start is None else start
        name = name or f"{self._name_prefix}{next(self._names):012x}"
        course = VirtualCourse(self, now)
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

    def _invoke(self, action: dict[str, Any], target: _Target | None = None) -> dict[str, Any]:
        """Run the function a RunTask action names; the event that reports how it went."""
        token = action["token"]
        function, context, _ = target or self._target(action["function"], action["function_arn"])
        if function is None:
            error, cause = function_not_found(action["function_arn"])
            return {"type": "TaskFailed", "token": token, "error": error, "cause": cause}
        try:
            output = function(json_copy(action["payload"]), context)
        except Exception as exc:
            error, cause = lambda_error(exc)
            return {"type": "TaskFailed", "token": token, "error": error, "cause": cause}
        try:
            # The result travels as JSON, as a worker's would: what JSON cannot carry fails the task.
            output = json_copy(output, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            error, cause = marshal_error(exc)
            return {"type": "TaskFailed", "token": token, "error": error, "cause": cause}
        return {"type": "TaskSucceeded", "token": token, "output": output}

    def _target(self, name: str, arn: str) -> _Target:
        """The function called ``name``, the context it gets, and the virtual time it takes.

        The context holds nothing that changes between calls (its request id is made when
        read), so one per function serves every call.
        """
        key = (name, arn)
        target = self._targets.get(key)
        if target is None:
            function = self.functions.get(name)
            delay = float(getattr(function, "virtual_duration_seconds", 0.0))
            target = self._targets[key] = (function, _Context(name, arn), delay)
        return target

    def _service(self, action: dict[str, Any], effects: list[dict[str, Any]], now: float) -> dict[str, Any]:
        report, effect = services.carry_out(action["service"], action.get("parameters") or {}, now)
        if effect is not None:
            effects.append({"kind": effect.kind, "target": effect.target, "payload": effect.payload})
        return {**report, "token": action["token"]}


class VirtualCourse:
    """Carries out one execution's actions on the virtual clock, for the core to run it in one call."""

    __slots__ = ("due", "effects", "now", "runner", "sequence")

    def __init__(self, runner: LocalRunner, now: float) -> None:
        self.runner = runner
        self.now = now
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
        return self.runner._invoke(action, target)

    def next_event(self, actions: list[dict[str, Any]]) -> tuple[float, dict[str, Any]] | None:
        due, now = self.due, self.now
        for action in actions:
            kind = action["type"]
            if kind == "RunTask":
                target = self.runner._target(action["function"], action["function_arn"])
                event = self.runner._invoke(action, target)
                heapq.heappush(due, (now + target[2], next(self.sequence), event))
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


class _NotPlainJson(Exception):
    """A value holds something other than JSON's own types, exactly."""


# Python refuses to turn an int of more than 4300 digits into text, so JSON cannot carry it.
_LARGEST_PLAIN_INT = 10**4000


def json_copy(value: Any, *, allow_nan: bool = True) -> Any:
    """What ``value`` becomes after a trip through JSON text, as a task's payload and result make.

    A value made only of dicts with string keys, lists, strings, finite numbers, booleans
    and None comes back as an equal copy; copying it directly costs a fraction of encoding
    and decoding it. Anything else takes the real trip, which converts or refuses it as
    JSON does.

    Raises:
        TypeError, ValueError, RecursionError: as ``json.dumps`` does for what JSON cannot carry.
    """
    try:
        return _plain_copy(value)
    except (_NotPlainJson, RecursionError):
        return json.loads(json.dumps(value, allow_nan=allow_nan))


_TAKEN_AS_THEY_ARE = frozenset({str, bool, type(None)})


def _plain_copy(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is dict:
        copy = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlainJson
            # Strings, booleans and nulls are most of what a payload holds: taken as they
            # are, they save a call each.
            copy[key] = item if type(item) in _TAKEN_AS_THEY_ARE else _plain_copy(item)
        return copy
    if kind is list:
        return [item if type(item) in _TAKEN_AS_THEY_ARE else _plain_copy(item) for item in value]
    if kind is int and -_LARGEST_PLAIN_INT < value < _LARGEST_PLAIN_INT:
        return value
    if kind is float and math.isfinite(value):
        return value
    raise _NotPlainJson
