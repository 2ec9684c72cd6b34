"""StartSyncExecution: run an EXPRESS machine's execution and answer with how it ended.

The request is held until the execution ends (runtime.sync_executions: no polling), at most
AWS's five minutes (``REDSTEP_SYNC_EXECUTION_LIMIT_SECONDS`` may shorten it); an execution
still running then is stopped and answered TIMED_OUT, as AWS ends an express execution that
outlives its synchronous caller's limit.

A version ARN or an alias ARN runs that version (an alias picks one of its versions by weight),
as StartExecution does, and the execution is listed under that version and alias.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

from starlette.concurrency import run_in_threadpool

from orchestrator.api.config import ApiSettings
from orchestrator.api.errors import ApiError
from orchestrator.api.stepfunctions import versions
from orchestrator.api.stepfunctions.context import StepFunctions
from orchestrator.api.stepfunctions.executions import execution_input, execution_name, started_through
from orchestrator.runtime.sync_executions import EndWaiter
from orchestrator.settings import Settings

BILLED_MEMORY_MB = 64
"""AWS bills express executions in 64 MB steps; redstep reports the smallest."""
BILLING_STEP_MS = 100
TIMED_OUT_CAUSE = "The execution ran longer than StartSyncExecution's limit"
# An ABORTED execution (StopExecution) has no SyncExecutionStatus of its own.
SYNC_STATUS = {"SUCCEEDED": "SUCCEEDED", "FAILED": "FAILED", "TIMED_OUT": "TIMED_OUT", "ABORTED": "FAILED"}


async def start_sync_execution(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    entry, version, alias = await run_in_threadpool(started_through, sfn, request["stateMachineArn"])
    if entry.type != "EXPRESS":
        raise ApiError(
            "StateMachineTypeNotSupported",
            f"This operation is not supported by this type of state machine: '{request['stateMachineArn']}'"
            " is a STANDARD state machine; StartSyncExecution runs EXPRESS ones (use StartExecution)",
        )
    name, value = execution_name(request), execution_input(request)
    revision = version.revision if version else None
    started = await run_in_threadpool(
        sfn.client.start_new_execution, entry.name, value, name, revision, notify_end=True
    )
    if not started:
        raise ApiError(
            "ExecutionAlreadyExists", f"Execution Already Exists: '{sfn.arns.execution(entry.name, name)}'"
        )
    if version is not None:
        await run_in_threadpool(_record_origin, sfn, name, version.number, alias)
    if not await end_waiter(sfn.client.settings).ended(name, limit_seconds()):
        await run_in_threadpool(sfn.client.stop_execution, name, "States.Timeout", TIMED_OUT_CAUSE)
        return _answer(sfn, await run_in_threadpool(sfn.client.describe, name), request, timed_out=True)
    return _answer(sfn, await run_in_threadpool(sfn.client.describe, name), request)


def _record_origin(sfn: StepFunctions, name: str, number: int, alias: str | None) -> None:
    # Before the wait: DescribeExecution and ListExecutions show the version while it runs.
    started = sfn.client.describe(name)
    if started is not None:
        versions.record_origin(sfn, started, number, alias)


def _answer(
    sfn: StepFunctions, described: dict[str, Any] | None, request: dict[str, Any], timed_out: bool = False
) -> dict[str, Any]:
    if described is None:  # removed by retention the very moment it ended: say what is known
        raise ApiError("ExecutionDoesNotExist", "the execution ended and is no longer kept")
    start, stop = float(described["startDate"]), float(described.get("stopDate") or described["startDate"])
    status = "TIMED_OUT" if timed_out else SYNC_STATUS.get(described["status"], "FAILED")
    answer: dict[str, Any] = {
        "executionArn": sfn.execution_arn(described),
        "stateMachineArn": sfn.arns.state_machine(described["stateMachine"]),
        "name": described["name"],
        "startDate": start,
        "stopDate": stop,
        "status": status,
        "billingDetails": {
            "billedMemoryUsedInMB": BILLED_MEMORY_MB,
            "billedDurationInMilliseconds": BILLING_STEP_MS
            * max(1, math.ceil((stop - start) * 1000 / BILLING_STEP_MS)),
        },
    }
    if timed_out:
        answer.update(error="States.Timeout", cause=TIMED_OUT_CAUSE)
    for field in ("error", "cause"):
        if described.get(field) is not None and not timed_out:
            answer[field] = described[field]
    if request.get("includedData") != "METADATA_ONLY":
        answer["input"], answer["inputDetails"] = json.dumps(described["input"]), {"included": True}
        if described["status"] == "SUCCEEDED":
            answer["output"], answer["outputDetails"] = json.dumps(described["output"]), {"included": True}
    return answer


@functools.cache
def limit_seconds() -> float:
    """How long a request may wait for an execution's end: AWS's five minutes, or less if configured."""
    return ApiSettings().sync_execution_limit_seconds


_WAITERS: dict[tuple[str, str], EndWaiter] = {}


def end_waiter(settings: Settings) -> EndWaiter:
    # One per Redis and prefix for the life of the process: its connections are pooled.
    key = (settings.redis_url, settings.prefix)
    if key not in _WAITERS:
        _WAITERS[key] = EndWaiter(settings)
    return _WAITERS[key]
