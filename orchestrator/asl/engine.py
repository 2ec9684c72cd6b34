"""The transition function: ``advance(execution, event, now) -> (execution', actions, history)``.

An execution is a JSON document. It holds *threads of control*: the top level is one
thread; each Parallel branch and Map iteration runs in a thread of its own whose parent
waits for it. A thread that waits for the outside world (a task result, a timer) holds a
*token*; the event that resumes it names that token, so an event for a token nobody waits
for any more (a late result, a timer of a state already left) changes nothing.

Nothing here does I/O or reads a clock: the caller passes ``now`` and carries out the
actions that a step returns: ``RunTask``, ``RunService``, ``SetTimer``, ``CancelTimer`` (a
timer nobody waits for any more: the state it guarded ended before it fired) and
``ExecutionFinished``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from orchestrator.asl import errors
from orchestrator.asl.compiled import CompiledState
from orchestrator.asl.dataflow import StateData, iso_time
from orchestrator.asl.definition import StateMachine
from orchestrator.asl.errors import StatesError
from orchestrator.asl.history import RawEvent, history_events
from orchestrator.asl.json_values import exceeds_payload_limit

RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED = "RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"
ACCOUNT = "000000000000"
REGION = "us-east-1"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/redstep"


class InProcess(Protocol):
    """A caller that carries out actions in-process (the local runner), so that a whole
    execution runs in one call of the core instead of a step per event.

    It answers only as the step-by-step course would go, so an execution takes the same
    course, with the same history, either way.
    """

    def run_task_now(self, action: dict[str, Any]) -> dict[str, Any] | None:
        """Run the task ``action`` asks for now, and return the event reporting its result,
        if that event would be the very next one delivered; otherwise do nothing and return
        None (the action then waits its turn with the others)."""

    def next_event(self, actions: list[dict[str, Any]]) -> tuple[float, dict[str, Any]] | None:
        """Take the actions decided so far (emptying the list), and return the next event
        with the time it happens, or None when nothing more is coming."""


@dataclass(slots=True)
class Step:
    """What one call of the core decided: the updated execution, actions to carry out, new history."""

    execution: dict[str, Any]
    actions: list[dict[str, Any]] = field(default_factory=list)
    events: list[RawEvent] = field(default_factory=list)

    @property
    def history(self) -> list[dict[str, Any]]:
        """The new history events, in AWS's shape."""
        return history_events(self.events)


def state_machine_arn(name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"


def execution_arn(machine: str, name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{machine}:{name}"


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
    execution: dict[str, Any] = {
        "name": name,
        "arn": arn or execution_arn(machine.name, name),
        "stateMachine": machine.name,
        "status": RUNNING,
        "input": input,
        "output": None,
        "error": None,
        "cause": None,
        "startDate": now,
        "stopDate": None,
        "lastEventId": 0,
        "seq": 0,
        "threads": {},
        "tokens": {},
    }
    run = _run(machine, execution, now)
    run.in_process = in_process
    run.record_event(None, "ExecutionStarted", {"input": input, "roleArn": ROLE_ARN})
    if machine.timeout_seconds:
        token = run.new_token(None, "execution-timeout")
        run.actions.append({"type": "SetTimer", "token": token, "due": now + machine.timeout_seconds})
    if exceeds_payload_limit(input):
        run.finish(
            FAILED,
            error=errors.DATA_LIMIT_EXCEEDED,
            cause="The execution input exceeds the maximum number of bytes service limit (262144).",
        )
        return run.step()
    run.start_root(machine.start_at, input, {})
    run.drive()
    return run.step()


def redrive_execution(machine: StateMachine, execution: dict[str, Any], now: float) -> Step:
    """Restart a FAILED, TIMED_OUT or ABORTED execution from the top-level state where it stopped.

    As AWS's RedriveExecution does: the history goes on (an ``ExecutionRedriven`` event, then
    the state entered again with the input it had), and ``$$.Execution.RedriveCount`` counts up.

    Raises:
        ValueError: when the execution succeeded, still runs, or never got past its start.
    """
    point = execution.get("redrivePoint")
    if execution["status"] in (RUNNING, SUCCEEDED) or point is None:
        raise ValueError(
            f"execution {execution['name']} is {execution['status']}: only a FAILED, TIMED_OUT or "
            "ABORTED execution that entered a state can be redriven"
        )
    execution["redriveCount"] = execution.get("redriveCount", 0) + 1
    execution.update(status=RUNNING, output=None, error=None, cause=None, stopDate=None)
    del execution["redrivePoint"]
    run = _run(machine, execution, now)
    run.record(None, "ExecutionRedriven", redriveCount=execution["redriveCount"])
    run.start_root(point["state"], point["input"], point["vars"])
    run.drive()
    return run.step()


def advance(
    machine: StateMachine,
    execution: dict[str, Any],
    event: dict[str, Any],
    now: float,
    *,
    in_process: InProcess | None = None,
) -> Step:
    """Apply one event to a running execution and run it until it waits again or ends.

    ``execution`` is updated in place and returned in the step.
    """
    run = _run(machine, execution, now)
    run.in_process = in_process
    if execution["status"] != RUNNING:
        return run.step()
    run.handle(event)
    run.drive()
    return run.step()


def _run(machine: StateMachine, execution: dict[str, Any], now: float) -> Any:
    return (_RUN_CLASS or _run_class())(machine, execution, now)


# Every call of the core makes a Run, so the class is kept here once found rather than
# looked up through a cached function each time.
_RUN_CLASS: Any = None


def _run_class() -> Any:
    global _RUN_CLASS
    # Imported on first use: the runner imports the state-type modules, which import this one.
    from orchestrator.asl.runner import Run

    _RUN_CLASS = Run
    return Run


def context_object(run: Any, thread: dict[str, Any], state: CompiledState) -> dict[str, Any]:
    """The context object (``$$``) that ``state`` sees in ``thread``."""
    execution_part, machine_part = run.context_parts()
    context: dict[str, Any] = {
        "Execution": execution_part,
        "StateMachine": machine_part,
        "State": {"EnteredTime": iso_time(thread.get("enteredAt", run.now)), "Name": state.name},
    }
    if state.type == "Task":
        context["State"]["RetryCount"] = thread.get("retryCount", 0)
    if "item" in thread:
        context["Map"] = {"Item": thread["item"]}
    return context


def execution_context(run: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The parts of the context object that stay the same for the whole execution."""
    execution = run.execution
    return (
        {
            "Id": execution["arn"],
            "Input": execution["input"],
            "StartTime": iso_time(execution["startDate"]),
            "Name": execution["name"],
            "RoleArn": ROLE_ARN,
            "RedriveCount": execution.get("redriveCount", 0),
        },
        {"Id": state_machine_arn(run.machine.name), "Name": run.machine.name},
    )


def state_data(run: Any, thread: dict[str, Any]) -> StateData:
    """The view of its input, context and variables that ``thread``'s current state has."""
    compiled = run.machine.compiled_state(thread["scope"], thread["state"])
    return StateData(compiled, thread["input"], thread["vars"], run, thread)


__all__ = [
    "ABORTED",
    "FAILED",
    "RUNNING",
    "SUCCEEDED",
    "TIMED_OUT",
    "StatesError",
    "Step",
    "advance",
    "errors",
    "execution_arn",
    "redrive_execution",
    "start_execution",
]
