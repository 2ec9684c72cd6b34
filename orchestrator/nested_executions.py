"""``states:startExecution``: what a nested execution's start asks for, and what its parent hears.

A Task whose Resource is ``arn:aws:states:::states:startExecution`` starts an execution of
another state machine ("Start a new AWS Step Functions state machine from a running
execution", connect-stepfunctions.html). Its parameters are StartExecution's:
``StateMachineArn``, ``Name`` (a new UUID when absent) and ``Input`` (JSON text, or any JSON
value, which is sent as its text; none is ``{}``). The task's result is StartExecution's
response; with ``.sync`` or ``.sync:2`` the task records it in a TaskSubmitted event and waits
for the child's end, whose DescribeExecution is the result (``Input`` and ``Output`` as JSON
text with ``.sync``, as JSON values with ``.sync:2``). A child that does not succeed fails the
task with ``States.TaskFailed``, its DescribeExecution as the cause. A refused start fails it
with StartExecution's error, as ``StepFunctions.<Code>Exception``.

Pure: the Redis runtime and the local runner both word their reports with it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from orchestrator.asl.dataflow import iso_time
from orchestrator.asl.execution import execution_arn, state_machine_arn
from orchestrator.asl.sdk_responses import (
    JSON_1_0,
    response_headers,
    sdk_v1_failure,
    sdk_v2_failure,
    with_metadata,
)
from orchestrator.protocol.decoding import strict_loads
from orchestrator.runtime.sources import message_id_problem

START_EXECUTION_EVENT = "StartExecution"
"""The event an orchestrator takes a child's start from (keyed by the child's name)."""
PARENT_TASK = "parentTask"
"""The child's field naming the .sync task that waits on its end: execution, token, sync."""
SYNC_CHILDREN = "syncChildren"
"""The parent's field naming the child each of its .sync tasks waits on, by the task's token:
a child its task no longer waits for (timed out, or its execution ended) is stopped."""


@dataclass(frozen=True, slots=True)
class ChildStart:
    """A start that a ``states:startExecution`` task asks for."""

    machine: str  # the child state machine's name
    name: str  # the child execution's name
    input: Any
    sync: int  # 0: the task does not wait; 1 or 2: .sync or .sync:2
    sdk: bool = False  # asked by aws-sdk:sfn:startExecution: the answer and errors as the SDK words them


def start_request(parameters: Any, sync: int, sdk: bool = False) -> ChildStart | dict[str, Any]:
    """The start ``parameters`` ask for, or the TaskFailed report (without its token) refusing it."""
    parameters = parameters if isinstance(parameters, dict) else {}
    arn = parameters.get("StateMachineArn")
    machine = machine_name(arn)
    if machine is None:
        return refused("InvalidArn", f"Invalid Arn: 'Resource type not valid in this context: {arn}'", sdk)
    name = parameters.get("Name", str(uuid.uuid4()))
    if problem := message_id_problem(name):
        return refused("InvalidName", f"Invalid Name: the execution name {problem}", sdk)
    given = parameters.get("Input")
    if given is None:
        input: Any = {}
    elif isinstance(given, str):
        try:
            input = strict_loads(given)
        except ValueError as exc:
            return refused("InvalidExecutionInput", f"Invalid State Machine Execution Input: '{exc}'", sdk)
    else:
        input = given
    return ChildStart(machine, name, input, sync, sdk)


def machine_name(arn: Any) -> str | None:
    """The machine a StateMachineArn names: ``arn:aws:states:<region>:<account>:stateMachine:<name>``."""
    if not isinstance(arn, str):
        return None
    parts = arn.split(":")
    if len(parts) in (7, 8) and parts[:3] == ["arn", "aws", "states"] and parts[5] == "stateMachine":
        return parts[6] or None
    return None


def refused(code: str, message: str, sdk: bool = False) -> dict[str, Any]:
    """The TaskFailed report of a StartExecution refused with ``code``, worded as a service error:
    ``StepFunctions.<Code>Exception`` for the optimized integration, ``Sfn.<Code>Exception`` for
    aws-sdk:sfn (as AWS recorded an aws-sdk:sfn refusal)."""
    if sdk:
        return sdk_v2_failure(f"Sfn.{code}Exception", message, "Sfn")
    return sdk_v1_failure(f"StepFunctions.{code}Exception", message, "AWSStepFunctions", code)


def machine_missing(machine: str, sdk: bool = False) -> dict[str, Any]:
    return refused(
        "StateMachineDoesNotExist", f"State Machine Does Not Exist: '{state_machine_arn(machine)}'", sdk
    )


def already_exists(machine: str, name: str, sdk: bool = False) -> dict[str, Any]:
    arn = execution_arn(machine, name)
    return refused("ExecutionAlreadyExists", f"Execution Already Exists: '{arn}'", sdk)


def started(child: dict[str, Any], sync: int, sdk: bool = False) -> dict[str, Any]:
    """The report of the child's start: StartExecution's response, submitted (.sync) or as the result."""
    output = sdk_start_response(child) if sdk else start_response(child)
    return {"type": "TaskSubmitted" if sync else "TaskSucceeded", "output": output}


def sdk_start_response(child: dict[str, Any]) -> dict[str, Any]:
    """StartExecution's response as aws-sdk:sfn:startExecution gives it: ExecutionArn, StartDate as text."""
    return {"ExecutionArn": child["arn"], "StartDate": iso_time(child["startDate"])}


def start_response(child: dict[str, Any]) -> dict[str, Any]:
    """StartExecution's response as a task's result: ExecutionArn, StartDate and the SDK's metadata."""
    request_id = str(uuid.uuid4())
    start = milliseconds(child["startDate"])
    body = json.dumps({"executionArn": child["arn"], "startDate": start / 1000}, separators=(",", ":"))
    headers = response_headers(JSON_1_0, len(body), child["startDate"], request_id)
    return {**with_metadata({"ExecutionArn": child["arn"]}, headers, request_id), "StartDate": start}


def ended(child: dict[str, Any], sync: int) -> dict[str, Any]:
    """The report of the child's end to the .sync task waiting on it (without its token)."""
    described = describe(child, sync)
    if child["status"] == "SUCCEEDED":
        return {"type": "TaskSucceeded", "output": described}
    return {"type": "TaskFailed", "error": "States.TaskFailed", "cause": json.dumps(described)}


def describe(child: dict[str, Any], sync: int) -> dict[str, Any]:
    """The child's DescribeExecution, as a .sync (JSON text) or .sync:2 (JSON values) task sees it."""

    def data(value: Any) -> Any:
        return json.dumps(value, separators=(",", ":")) if sync == 1 else value

    described: dict[str, Any] = {}
    if child.get("cause") is not None:
        described["Cause"] = child["cause"]
    if child.get("error") is not None:
        described["Error"] = child["error"]
    described |= {
        "ExecutionArn": child["arn"],
        "Input": data(child["input"]),
        "InputDetails": {"Included": True},
        "Name": child["name"],
    }
    if child["status"] == "SUCCEEDED":
        described |= {"Output": data(child["output"]), "OutputDetails": {"Included": True}}
    return described | {
        "StartDate": milliseconds(child["startDate"]),
        "StateMachineArn": state_machine_arn(child["stateMachine"]),
        "Status": child["status"],
        "StopDate": milliseconds(child["stopDate"]),
    }


def milliseconds(seconds: float) -> int:
    """A date as the Step Functions integration gives it: milliseconds since 1970."""
    return round(seconds * 1000)
