"""Run one execution in-process, with no Redis and no real waiting.

The same core the orchestrator drives runs here with a virtual clock: Wait states, retry
back-off and timeouts pass instantly, so a test of a state machine takes milliseconds.
Functions are plain Python callables with the Lambda handler signature ``(event, context)``.
"""

from __future__ import annotations

import heapq
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.asl.definition import StateMachine
from orchestrator.asl.engine import RUNNING, Step, advance, start_execution
from orchestrator.tasks import function_not_found, lambda_error, marshal_error

Function = Callable[[Any, Any], Any]


@dataclass
class LocalResult:
    """How a local execution ended, in the shape ``redstep run --json`` prints."""

    status: str
    output: Any
    error: str | None
    cause: str | None
    execution_arn: str
    history: list[dict[str, Any]]
    notifications: list[dict[str, Any]] = field(default_factory=list)

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


class LocalRunner:
    """Drives executions of one state machine to their end on a virtual clock."""

    def __init__(self, machine: StateMachine, functions: dict[str, Function] | None = None) -> None:
        self.machine = machine
        self.functions = dict(functions or {})

    def run(self, input: Any, *, name: str | None = None, start: float | None = None) -> LocalResult:
        now = time.time() if start is None else start
        name = name or str(uuid.uuid4())
        history: list[dict[str, Any]] = []
        notifications: list[dict[str, Any]] = []
        due: list[tuple[float, int, dict[str, Any]]] = []
        sequence = 0

        def carry_out(step: Step) -> None:
            nonlocal sequence
            history.extend(step.history)
            for action in step.actions:
                sequence += 1
                kind = action["type"]
                if kind == "RunTask":
                    delay, event = self._invoke(action)
                    heapq.heappush(due, (now + delay, sequence, event))
                elif kind == "RunService":
                    event = self._service(action, notifications)
                    heapq.heappush(due, (now, sequence, event))
                elif kind == "SetTimer":
                    heapq.heappush(
                        due, (action["due"], sequence, {"type": "TimerFired", "token": action["token"]})
                    )

        step = start_execution(self.machine, name, input, now)
        carry_out(step)
        execution = step.execution
        while execution["status"] == RUNNING and due:
            when, _, event = heapq.heappop(due)
            now = max(now, when)
            carry_out(advance(self.machine, execution, event, now))
        return LocalResult(
            execution["status"],
            execution["output"],
            execution["error"],
            execution["cause"],
            execution["arn"],
            history,
            notifications,
        )

    def _invoke(self, action: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        token = action["token"]
        function = self.functions.get(action["function"])
        if function is None:
            error, cause = function_not_found(action["function_arn"])
            return 0.0, {"type": "TaskFailed", "token": token, "error": error, "cause": cause}
        context = _Context(action["function"], action["function_arn"])
        delay = float(getattr(function, "virtual_duration_seconds", 0.0))
        try:
            output = function(json.loads(json.dumps(action["payload"])), context)
        except Exception as exc:
            error, cause = lambda_error(exc)
            return delay, {"type": "TaskFailed", "token": token, "error": error, "cause": cause}
        try:
            # The result travels as JSON, as a worker's would: what JSON cannot carry fails the task.
            output = json.loads(json.dumps(output, allow_nan=False))
        except (TypeError, ValueError, RecursionError) as exc:
            error, cause = marshal_error(exc)
            return delay, {"type": "TaskFailed", "token": token, "error": error, "cause": cause}
        return delay, {"type": "TaskSucceeded", "token": token, "output": output}

    def _service(self, action: dict[str, Any], notifications: list[dict[str, Any]]) -> dict[str, Any]:
        message_id = str(uuid.uuid4())
        notifications.append(
            {"service": action["service"], "parameters": action["parameters"], "MessageId": message_id}
        )
        output: dict[str, Any] = {"MessageId": message_id}
        return {"type": "TaskSucceeded", "token": action["token"], "output": output}
