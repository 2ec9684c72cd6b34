"""The messages that cross between the orchestrator and the workers (JSON, never pickle).

A ``Task`` goes to the workers inside an RQ job (one job may carry several tasks); a
``TaskReport`` comes back on the orchestrator's event stream. The token fences a report to
the one attempt that was scheduled: a report whose token the execution no longer waits for
is ignored, so a late result from a retried attempt changes nothing.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal, NotRequired, TypedDict


class Task(TypedDict):
    """One invocation of a registered function."""

    execution: str  # the execution's name; it also names the execution's keys
    token: str  # fences the report to this attempt
    function: str  # the registered function's name
    function_arn: str  # the Lambda ARN the definition named (or one made from the name)
    payload: Any  # the event the function receives
    attempt: int
    heartbeat_seconds: NotRequired[float]  # report TaskHeartbeat at least this often while running
    timeout_seconds: NotRequired[float]  # the state's TimeoutSeconds: the task fails as States.Timeout then


class TaskReport(TypedDict):
    """The outcome of one task, as the worker writes it on the event stream."""

    type: Literal["TaskSucceeded", "TaskFailed", "TaskHeartbeat"]
    execution: str
    token: str
    output: NotRequired[Any]
    error: NotRequired[str]
    cause: NotRequired[str]


def function_arn(function: str) -> str:
    """The Lambda ARN of a function known only by its name."""
    return f"arn:aws:lambda:us-east-1:000000000000:function:{function}"


def function_not_found(arn: str) -> tuple[str, str]:
    """The ASL error and cause for a task whose function no worker registered, as AWS words it."""
    if arn.count(":") == 6:
        arn = f"{arn}:$LATEST"
    cause = (
        f"Function not found: {arn} (Service: AWSLambda; Status Code: 404; "
        f"Error Code: ResourceNotFoundException; Request ID: {uuid.uuid4()}; Proxy: null)"
    )
    return "Lambda.ResourceNotFoundException", cause
