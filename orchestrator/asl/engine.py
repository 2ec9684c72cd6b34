"""The transition function: ``advance(execution, event, now) -> (execution', actions, history)``.

An execution is a JSON document. It holds *threads of control*: the top level is one
thread; each Parallel branch and Map iteration runs in a thread of its own whose parent
waits for it. A thread that waits for the outside world (a task result, a timer) holds a
*token*; the event that resumes it names that token, so an event for a token nobody waits
for any more (a late result, a timer of a state already left) changes nothing.

The document's layout is typed in ``orchestrator.asl.execution``; it carries a ``schema``
version, and an older document is upgraded when a step takes it up.

Nothing here does I/O or reads a clock: the caller passes ``now`` and carries out the
actions that a step returns: ``RunTask``, ``RunService``, ``SetTimer``, ``CancelTimer`` (a
timer nobody waits for any more: the state it guarded ended before it fired) and
``ExecutionFinished``.
"""

from __future__ import annotations

from typing import Any

from orchestrator.asl import errors
from orchestrator.asl.definition import StateMachine
from orchestrator.asl.errors import StatesError
from orchestrator.asl.execution import (
    ABORTED,
    FAILED,
    ROLE_ARN,
    RUNNING,
    SUCCEEDED,
    TIMED_OUT,
    Event,
    Execution,
    InProcess,
    Step,
    execution_arn,
    new_execution,
    state_machine_arn,
    upgrade_execution,
)
from orchestrator.asl.json_values import BOUND_LIMIT, exceeds_payload_limit, payload_bound
from orchestrator.asl.runner import MAX_HISTORY_EVENTS, Run


def start_execution(
    machine: StateMachine,
    name: str,
    input: Any,
    now: float,
    *,
    arn: str | None = None,
    in_process: InProcess | None = None,
) -> Step:
    """Start an execution of ``machine`` called ``name`` and run it until it first waits.

    With ``in_process`` (see ``InProcess``), it runs on until nothing more is coming.
    """
    run = Run(machine, new_execution(machine.name, name, input, now, arn), now)
    run.in_process = in_process
    run.record_event(None, "ExecutionStarted", {"input": input, "roleArn": ROLE_ARN})
    if machine.timeout_seconds:
        run.set_timer(None, "execution-timeout", now + machine.timeout_seconds)
    bound = payload_bound(input)
    if bound > BOUND_LIMIT and exceeds_payload_limit(input):
        run.finish(
            FAILED,
            error=errors.DATA_LIMIT_EXCEEDED,
            cause="The execution input exceeds the maximum number of bytes service limit (262144).",
        )
        return run.step()
    run.known_bound = (input, bound)
    run.start_root(machine.start_at, input, {})
    run.drive()
    return run.step()


def redrive_execution(machine: StateMachine, stored: dict[str, Any], now: float) -> Step:
    """Restart a FAILED, TIMED_OUT or ABORTED execution from the top-level state where it stopped.

    As AWS's RedriveExecution does: the history goes on (an ``ExecutionRedriven`` event, then
    the state entered again with the input it had), and ``$$.Execution.RedriveCount`` counts up.

    Raises:
        ValueError: when the execution succeeded, still runs, never got past its start, or
            has no room left in its history for the redrive's first event.
    """
    execution = upgrade_execution(stored)
    point = execution.get("redrivePoint")
    if execution["status"] in (RUNNING, SUCCEEDED) or point is None:
        raise ValueError(
            f"execution {execution['name']} is {execution['status']}: only a FAILED, TIMED_OUT or "
            "ABORTED execution that entered a state can be redriven"
        )
    if execution["lastEventId"] + 1 >= MAX_HISTORY_EVENTS:
        # Its ExecutionRedriven event would be the last the history may hold, or past it.
        raise ValueError(
            f"execution {execution['name']} has {execution['lastEventId']} history events: no room is "
            f"left under the {MAX_HISTORY_EVENTS:,} an execution may have, so it cannot be redriven"
        )
    execution["redriveCount"] = execution.get("redriveCount", 0) + 1
    execution["status"], execution["output"], execution["stopDate"] = RUNNING, None, None
    execution["error"] = execution["cause"] = None
    del execution["redrivePoint"]
    run = Run(machine, execution, now)
    run.record(None, "ExecutionRedriven", redriveCount=execution["redriveCount"])
    run.start_root(point["state"], point["input"], point["vars"])
    run.drive()
    return run.step()


def advance(
    machine: StateMachine,
    stored: dict[str, Any],
    event: Event,
    now: float,
    *,
    in_process: InProcess | None = None,
) -> Step:
    """Apply one event to a running execution and run it until it waits again or ends.

    ``stored`` (upgraded first, see ``upgrade_execution``) is updated in place and returned
    in the step.
    """
    execution = upgrade_execution(stored)
    run = Run(machine, execution, now)
    run.in_process = in_process
    if execution["status"] != RUNNING:
        return run.step()
    run.handle(event)
    run.drive()
    return run.step()


__all__ = [
    "ABORTED",
    "FAILED",
    "ROLE_ARN",
    "RUNNING",
    "SUCCEEDED",
    "TIMED_OUT",
    "Execution",
    "InProcess",
    "StatesError",
    "Step",
    "advance",
    "errors",
    "execution_arn",
    "new_execution",
    "redrive_execution",
    "start_execution",
    "state_machine_arn",
    "upgrade_execution",
]
