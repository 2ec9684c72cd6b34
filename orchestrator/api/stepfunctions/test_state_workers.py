"""TestState of a state that runs a function: the state really runs, on the orchestrators and workers.

The one-state machine TestState made of the tested state (its exits Succeed stubs, its Retry
taken off to be judged, not run) is kept as a version of the internal machine
``redstep:TestState`` only: never under ``{p}:machines``, so ListStateMachines does not show
it, DescribeStateMachine and ListExecutions answer StateMachineDoesNotExist for it (the ``:``
is a character AWS forbids in machine names, so no user machine can take the name), and an
orchestrator runs it as it runs any execution started on a version. The execution is started
as StartSyncExecution starts one, with its end announced, and the request waits for that end
at most AWS's five minutes (TestState's limit; ``REDSTEP_SYNC_EXECUTION_LIMIT_SECONDS`` shortens
it); one still running then is stopped and answers States.Timeout, as on AWS. Its finished
executions are removed by the retention sweep ``KEPT_SECONDS`` after they end (they show in
``redstep list`` until then).

With no orchestrator or no worker to run it, the state runs in this process with no function
registered: each invoke fails as AWS's fails for a function that is not there
(Lambda.ResourceNotFoundException, its Catch and Retry judged as usual), and the cause says why.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from rq import Queue, Worker
from rq.serializers import JSONSerializer
from starlette.concurrency import run_in_threadpool

from orchestrator.api.stepfunctions.context import StepFunctions
from orchestrator.api.stepfunctions.sync import end_waiter, limit_seconds
from orchestrator.asl.definition import StateMachine
from orchestrator.local import LocalRunner
from orchestrator.runtime.machines import machine_version

INTERNAL_MACHINE = "redstep:TestState"
KEPT_SECONDS = 300.0
"""How long a finished TestState execution stays readable (GetExecutionHistory by its name)."""
TIMEOUT_ERROR = "States.Timeout"
TIMEOUT_CAUSE = "The state ran longer than TestState's limit of {seconds:g} seconds"
NOT_FOUND_ERROR = "Lambda.ResourceNotFoundException"


@dataclass
class TestRun:
    """How the tested state ran, in the shape TestState's answer is made from."""

    __test__ = False  # not a pytest class, whatever its name

    status: str
    output: Any = None
    error: str | None = None
    cause: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    effects: list[dict[str, Any]] = field(default_factory=list)
    missing: str | None = None
    """Why no worker ran the function (None when one did)."""


async def run_on_workers(sfn: StepFunctions, wrapper: dict[str, Any], given: Any) -> TestRun:
    """Run the one-state machine ``wrapper`` on ``given`` as an execution, and say how it ended."""
    text = json.dumps(wrapper, separators=(",", ":"))
    missing = await run_in_threadpool(_what_is_missing, sfn)
    if missing is not None:
        local = LocalRunner(StateMachine.parse(text, INTERNAL_MACHINE)).run(given)
        return TestRun(
            local.status, local.output, local.error, local.cause, local.history, local.effects, missing
        )
    version = await run_in_threadpool(_register, sfn, text)
    name = str(uuid.uuid4())
    client = sfn.client
    start = client.start_new_execution
    await run_in_threadpool(start, INTERNAL_MACHINE, given, name, version, notify_end=True)
    limit = limit_seconds()
    if not await end_waiter(client.settings).ended(name, limit):
        cause = TIMEOUT_CAUSE.format(seconds=limit)
        await run_in_threadpool(client.stop_execution, name, TIMEOUT_ERROR, cause)
        return TestRun("FAILED", error=TIMEOUT_ERROR, cause=cause)
    described = await run_in_threadpool(client.describe, name)
    if described is None:  # swept the moment it ended: the retention is minutes, so never in practice
        gone = "the test execution ended and is no longer kept"
        return TestRun("FAILED", error="States.Runtime", cause=gone)
    history = await run_in_threadpool(client.history, name)
    return TestRun(
        described["status"], described.get("output"), described.get("error"), described.get("cause"), history
    )


def with_missing_said(answer: dict[str, Any], run: TestRun) -> dict[str, Any]:
    """``answer``, its cause saying why no function ran when no worker could run it."""
    if run.missing is not None and answer.get("error") == NOT_FOUND_ERROR:
        answer["cause"] = f"{answer.get('cause', '')} [redstep: {run.missing}]"
    return answer


def _what_is_missing(sfn: StepFunctions) -> str | None:
    client = sfn.client
    if not client.orchestrators():
        return "no orchestrator is running, so no function was invoked; start `redstep orchestrator`"
    queue = Queue(client.keys.task_queue_name, connection=client.redis, serializer=JSONSerializer)
    if not Worker.all(queue=queue):
        return "no worker is running, so no function was invoked; start `redstep worker --functions ...`"
    return None


def _register(sfn: StepFunctions, text: str) -> str:
    """Keep ``text`` as a version of the internal machine (never as its current definition)."""
    version = machine_version(text)
    keys, pipe = sfn.client.keys, sfn.client.redis.pipeline(transaction=False)
    pipe.hset(keys.machine_versions, f"{INTERNAL_MACHINE}@{version}", text)
    pipe.hset(keys.machine_retention, INTERNAL_MACHINE, repr(KEPT_SECONDS))
    pipe.execute()
    return version
