"""A function that outlives its task's TimeoutSeconds: States.Timeout, and its late result ignored.

"Task workflow state" (AWS Step Functions Developer Guide, state-task.html): "If the task
runs longer than the specified seconds, this state fails with a States.Timeout error name";
TimeoutSecondsPath takes the same from the state's input. The history shows the timeout
(LambdaFunctionTimedOut for a Lambda ARN, TaskTimedOut for ``lambda:invoke``, as recorded in
the conformance case test_timeouts__test_fixed_timeout_service_lambda_with_path) and no
result: the state has moved on when the function's late result arrives.

The local runner's clock is virtual (a function's ``virtual_duration_seconds`` is how long
it takes), so the slow function costs no real time there; the stack test runs a real one.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator.asl.definition import StateMachine
from orchestrator.asl.engine import advance, start_execution
from orchestrator.asl.execution import arrival
from orchestrator.local import LocalRunner
from orchestrator.runtime.client import Client
from orchestrator.runtime.loop import Orchestrator
from orchestrator.runtime.server import RedisServer
from orchestrator.settings import Settings
from tests.conformance.stack import Stack, running_stack, stack_settings
from tests.runtime_fixtures import dragon
from worker.process import task_worker

THIS_FILE = Path(__file__).resolve()
LAMBDA = "arn:aws:lambda:us-east-1:000000000000:function:"


def takes_ten_minutes(event: Any, context: Any) -> Any:
    return {"late": True}


takes_ten_minutes.virtual_duration_seconds = 600  # type: ignore[attr-defined]


def sleeps_past_its_timeout(event: Any, context: Any) -> Any:
    """Sleeps for real, then leaves a mark that it finished (the stack test waits on it)."""
    time.sleep(event["seconds"])
    Path(event["marker"]).write_text("done")
    return {"late": True}


def runs_until_stopped(event: Any, context: Any) -> Any:
    """Never returns on its own: only its worker can stop it."""
    while True:
        time.sleep(0.05)


def lambda_task(resource: str = "takes_ten_minutes", **fields: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": LAMBDA + resource, "End": True, **fields}


def invoke_task(**fields: Any) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "takes_ten_minutes", "Payload.$": "$"},
        "End": True,
        **fields,
    }


def run_locally(state: dict[str, Any], input: Any, **more: Any) -> Any:
    definition = {"StartAt": "T", "States": {"T": state, **more}}
    return LocalRunner(
        StateMachine.parse(definition, "Timeouts"), {"takes_ten_minutes": takes_ten_minutes}
    ).run(input, start=0.0)


def kinds(result: Any) -> list[str]:
    return [event["type"] for event in result.history]


@pytest.mark.parametrize(
    "state",
    [lambda_task(TimeoutSeconds=5), lambda_task(TimeoutSecondsPath="$.timeout")],
    ids=["literal", "path"],
)
def test_a_lambda_task_that_outlives_its_timeout_fails_with_states_timeout(state: dict[str, Any]) -> None:
    result = run_locally(state, {"timeout": 5})

    assert (result.status, result.error, result.cause) == ("FAILED", "States.Timeout", None)
    assert kinds(result) == [
        "ExecutionStarted",
        "TaskStateEntered",
        "LambdaFunctionScheduled",
        "LambdaFunctionStarted",
        "LambdaFunctionTimedOut",
        "ExecutionFailed",
    ]
    assert result.history[2]["timeoutInSeconds"] == 5
    assert result.history[4]["error"] == "States.Timeout" and "cause" not in result.history[4]
    # Failed when its time ran out, on the virtual clock: not when the function would have ended.
    assert result.history[-1]["timestamp"] == 5.0


def test_a_lambda_invoke_task_that_outlives_its_timeout_fails_with_task_timed_out() -> None:
    result = run_locally(invoke_task(TimeoutSecondsPath="$.timeout"), {"timeout": 5})

    assert (result.status, result.error) == ("FAILED", "States.Timeout")
    assert kinds(result)[2:] == ["TaskScheduled", "TaskStarted", "TaskTimedOut", "ExecutionFailed"]
    assert result.history[4]["error"] == "States.Timeout"
    assert result.history[-1]["timestamp"] == 5.0


def test_a_caught_timeout_goes_on_and_the_late_result_changes_nothing() -> None:
    state = lambda_task(TimeoutSeconds=5, Catch=[{"ErrorEquals": ["States.Timeout"], "Next": "After"}])
    result = run_locally(state, {}, After={"Type": "Wait", "Seconds": 1000, "End": True})

    assert (result.status, result.output) == ("SUCCEEDED", {"Error": "States.Timeout"})
    # The function's result came at 600 s, while After waited: nothing of it shows.
    assert "LambdaFunctionSucceeded" not in kinds(result)
    assert result.history[-1]["timestamp"] == 1005.0


def test_the_core_ignores_a_result_reported_after_the_timeout_fired() -> None:
    machine = StateMachine.parse({"StartAt": "T", "States": {"T": lambda_task(TimeoutSeconds=5)}}, "Timeouts")
    step = start_execution(machine, "e", {}, 0.0)
    task = next(action for action in step.actions if action["type"] == "RunTask")
    timer = next(action for action in step.actions if action["type"] == "SetTimer")

    timed_out = advance(machine, step.execution, {"type": "TimerFired", "token": timer["token"]}, 5.0)
    late = advance(
        machine, timed_out.execution, {"type": "TaskSucceeded", "token": task["token"], "output": 1}, 600.0
    )

    assert timed_out.execution["status"] == "FAILED"
    assert (late.history, late.actions) == ([], [])


def started_with_timeout(state: dict[str, Any]) -> tuple[StateMachine, Any, dict[str, Any], dict[str, Any]]:
    """The machine of one state ``T``, its execution started at 0 s, its task and its timeout timer."""
    machine = StateMachine.parse({"StartAt": "T", "States": {"T": state}}, "Timeouts")
    step = start_execution(machine, "e", {}, 0.0)
    task = next(a for a in step.actions if a["type"] in ("RunTask", "RunService"))
    timer = next(a for a in step.actions if a["type"] == "SetTimer")
    return machine, step, task, timer


@pytest.mark.parametrize("outcome", ["TaskSucceeded", "TaskFailed"])
def test_an_outcome_taken_after_the_timeout_was_due_but_before_its_timer_fired_is_a_timeout(
    outcome: str,
) -> None:
    """As on AWS, whatever order the orchestrators take them in: the task ran past TimeoutSeconds.

    A result reaches the event stream before the timer's firing does when the orchestrators were
    away, or busy, at the due time (fire_timers appends behind what is already on the stream).
    """
    machine, step, task, timer = started_with_timeout(lambda_task(TimeoutSeconds=5))

    late = advance(machine, step.execution, {"type": outcome, "token": task["token"], "output": 1}, 6.0)
    fired = advance(machine, late.execution, {"type": "TimerFired", "token": timer["token"]}, 6.5)

    assert (late.execution["status"], late.execution["error"]) == ("FAILED", "States.Timeout")
    assert [e["type"] for e in late.history][-2:] == ["LambdaFunctionTimedOut", "ExecutionFailed"]
    assert {"type": "CancelTimer", "token": timer["token"]} in late.actions
    assert (fired.history, fired.actions) == ([], [])


def test_an_outcome_taken_before_the_timeout_was_due_is_the_tasks() -> None:
    machine, step, task, _ = started_with_timeout(lambda_task(TimeoutSeconds=5))

    on_time = advance(
        machine, step.execution, {"type": "TaskSucceeded", "token": task["token"], "output": 1}, 5.0
    )

    assert (on_time.execution["status"], on_time.execution["output"]) == ("SUCCEEDED", 1)
    assert all("timeoutAt" not in thread for thread in on_time.execution["threads"].values())


def test_a_late_outcome_is_retried_as_the_timeout_it_is() -> None:
    retried = lambda_task(TimeoutSeconds=5, Retry=[{"ErrorEquals": ["States.Timeout"], "IntervalSeconds": 2}])
    machine, step, task, _ = started_with_timeout(retried)

    late = advance(
        machine, step.execution, {"type": "TaskSucceeded", "token": task["token"], "output": 1}, 9.0
    )

    assert late.execution["status"] == "RUNNING"
    assert [e["type"] for e in late.history] == ["LambdaFunctionTimedOut"]
    assert any(a["type"] == "SetTimer" and a["due"] == 11.0 for a in late.actions)  # the retry's interval


def test_a_callback_answered_after_its_timeout_was_due_times_out() -> None:
    callback = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"QueueUrl": "q", "MessageBody": {"token.$": "$$.Task.Token"}},
        "TimeoutSeconds": 5,
        "End": True,
    }
    machine, step, _, _ = started_with_timeout(callback)
    token = step.execution["threads"]["0"]["tokens"][0]

    late = advance(machine, step.execution, {"type": "TaskSucceeded", "token": token, "output": 1}, 7.0)

    assert (late.execution["status"], late.execution["error"]) == ("FAILED", "States.Timeout")


# -- when a report arrived, not when it was taken --------------------------------------------


def test_an_outcome_that_arrived_in_time_is_the_tasks_however_late_it_is_taken() -> None:
    """The orchestrators were away when the timeout came due; the result had come before it."""
    machine, step, task, _ = started_with_timeout(lambda_task(TimeoutSeconds=5))

    taken = advance(
        machine,
        step.execution,
        {"type": "TaskSucceeded", "token": task["token"], "output": 1, "arrivedAt": 4.0},
        600.0,
    )

    assert (taken.execution["status"], taken.execution["output"]) == ("SUCCEEDED", 1)


def test_an_arrival_stamped_after_it_was_taken_counts_as_taken() -> None:
    assert arrival({"type": "TaskSucceeded", "arrivedAt": 9.0}, 6.0) == 6.0
    assert arrival({"type": "TaskSucceeded", "arrivedAt": "4"}, 6.0) == 6.0
    assert arrival({"type": "TaskSucceeded", "arrivedAt": -1.0}, 6.0) == 6.0
    assert arrival({"type": "TaskSucceeded"}, 6.0) == 6.0
    assert arrival({"type": "TaskSucceeded", "arrivedAt": 4.0}, 6.0) == 4.0


def heartbeat_task(**fields: Any) -> dict[str, Any]:
    """A callback task that must hear a heartbeat every 3 s (its clock starts as it is scheduled)."""
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"QueueUrl": "q", "MessageBody": {"token.$": "$$.Task.Token"}},
        "HeartbeatSeconds": 3,
        "End": True,
        **fields,
    }


def answered(events: list[dict[str, Any]], state: dict[str, Any], taken_at: float) -> Any:
    """The step after ``events`` (each with the task's token added) are taken at ``taken_at``."""
    machine, step, _, _ = started_with_timeout(state)
    token = step.execution["threads"]["0"]["tokens"][0]
    execution, history = step.execution, []
    for event in events:
        step = advance(machine, execution, {**event, "token": token}, taken_at)
        execution, history = step.execution, history + step.history
    return execution, history


def test_an_outcome_that_arrived_after_the_heartbeat_was_due_is_a_heartbeat_timeout() -> None:
    execution, history = answered(
        [{"type": "TaskSucceeded", "output": 1, "arrivedAt": 4.0}], heartbeat_task(), 4.5
    )

    assert (execution["status"], execution["error"]) == ("FAILED", "States.HeartbeatTimeout")
    assert [e["type"] for e in history][-2:] == ["TaskTimedOut", "ExecutionFailed"]


def test_heartbeats_that_arrived_in_time_keep_the_task_however_late_they_are_taken() -> None:
    beats = [{"type": "TaskHeartbeat", "arrivedAt": at} for at in (2.0, 4.5, 7.0)]
    outcome = {"type": "TaskSucceeded", "output": 1, "arrivedAt": 9.5}

    execution, _ = answered([*beats, outcome], heartbeat_task(), 60.0)

    assert (execution["status"], execution["output"]) == ("SUCCEEDED", 1)


def test_a_heartbeat_that_arrived_too_late_is_a_heartbeat_timeout() -> None:
    beats = [{"type": "TaskHeartbeat", "arrivedAt": at} for at in (2.0, 5.5)]  # 3.5 s apart

    execution, _ = answered(beats, heartbeat_task(), 6.0)

    assert (execution["status"], execution["error"]) == ("FAILED", "States.HeartbeatTimeout")


def test_an_outcome_past_both_deadlines_fails_with_the_one_that_ended_first() -> None:
    outcome = [{"type": "TaskSucceeded", "output": 1, "arrivedAt": 12.0}]

    missed_heartbeat, _ = answered(outcome, heartbeat_task(TimeoutSeconds=10), 12.0)
    beats = [{"type": "TaskHeartbeat", "arrivedAt": at} for at in (2.0, 4.0, 6.0, 8.0, 10.0)]
    missed_timeout, _ = answered([*beats, *outcome], heartbeat_task(TimeoutSeconds=9), 12.0)

    assert missed_heartbeat["error"] == "States.HeartbeatTimeout"
    assert missed_timeout["error"] == "States.Timeout"


def started_with_execution_timeout() -> tuple[StateMachine, Any, dict[str, Any]]:
    """An execution of one task, its machine's own TimeoutSeconds 5, started at 0 s; its task."""
    definition = {"StartAt": "T", "TimeoutSeconds": 5, "States": {"T": lambda_task()}}
    machine = StateMachine.parse(definition, "ExecutionTimeout")
    step = start_execution(machine, "e", {}, 0.0)
    return machine, step, next(a for a in step.actions if a["type"] == "RunTask")


@pytest.mark.parametrize(
    ("arrived", "status"), [(4.0, "SUCCEEDED"), (6.0, "TIMED_OUT")], ids=["in time", "too late"]
)
def test_a_report_is_judged_against_the_executions_own_timeout_by_when_it_arrived(
    arrived: float, status: str
) -> None:
    """ "TimeoutSeconds: the maximum number of seconds an execution of the state machine can run"
    (the Amazon States Language): an execution past it has timed out, whatever came after."""
    machine, step, task = started_with_execution_timeout()
    report = {"type": "TaskSucceeded", "token": task["token"], "output": 1, "arrivedAt": arrived}

    taken = advance(machine, step.execution, report, 30.0)

    assert taken.execution["status"] == status
    assert [e["type"] for e in taken.history][-1] == f"Execution{status.title().replace('_', '')}"


def test_a_stop_that_arrived_after_the_execution_timed_out_finds_it_timed_out() -> None:
    machine, step, _ = started_with_execution_timeout()

    taken = advance(machine, step.execution, {"type": "StopExecution", "arrivedAt": 7.0}, 8.0)

    assert taken.execution["status"] == "TIMED_OUT"


def test_on_redis_a_report_that_arrived_in_time_is_the_tasks_though_taken_past_the_timeout(
    redis_client: redis.Redis, settings: Settings
) -> None:
    """The orchestrators judge a report by when it reached the event stream, by Redis's clock."""
    client = Client(redis_client, settings)
    state = {"Type": "Task", "Resource": LAMBDA + "ValidateDragon", "TimeoutSeconds": 30, "End": True}
    client.register_machine("Timed", {"StartAt": "Call", "States": {"Call": state}})
    name = client.start_execution("Timed", dragon("Prompt"))
    task_worker(redis_client, settings).work(burst=True, logging_level="WARNING")

    # Taken a minute later: the orchestrators were away when the timeout came due.
    away = Orchestrator(redis_client, settings, "o1", clock=lambda: time.time() + 60)
    for _ in range(3):
        away.run_once()

    described = client.describe(name)
    assert described is not None and described["status"] == "SUCCEEDED", described


# -- on a real stack ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An orchestrator and one worker process that loaded this file's functions."""
    settings, env = stack_settings(redis_server.url, "timeouts")
    with running_stack(settings, env, [THIS_FILE], tmp_path_factory.mktemp("workers"), workers=1) as running:
        yield running


def wait_for(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {seconds} s")
        time.sleep(0.05)


@pytest.mark.stack
def test_on_the_stack_a_function_that_outlives_its_timeout_fails_the_task_and_its_result_is_ignored(
    stack: Stack, tmp_path: Path
) -> None:
    machine = f"timeout-{uuid.uuid4().hex[:6]}"
    stack.client.register_machine(
        machine, {"StartAt": "T", "States": {"T": lambda_task("sleeps_past_its_timeout", TimeoutSeconds=1)}}
    )
    marker = tmp_path / "finished"
    name = stack.client.start_execution(machine, {"seconds": 3, "marker": str(marker)})

    described = stack.client.wait(name, timeout=60)
    assert (described["status"], described.get("error")) == ("FAILED", "States.Timeout")

    # The function ends two seconds later and reports; the next job on the one worker comes
    # after that report, so once it has finished the late report has been taken up too.
    wait_for(marker.exists, 60, "the slow function's end")
    after = f"{machine}-after"
    stack.client.register_machine(
        after, {"StartAt": "T", "States": {"T": lambda_task("sleeps_past_its_timeout")}}
    )
    stack.client.wait(stack.client.start_execution(after, {"seconds": 0, "marker": str(tmp_path / "b")}), 60)

    history = [event["type"] for event in stack.client.history(name)]
    assert history == [
        "ExecutionStarted",
        "TaskStateEntered",
        "LambdaFunctionScheduled",
        "LambdaFunctionStarted",
        "LambdaFunctionTimedOut",
        "ExecutionFailed",
    ]
    assert stack.client.describe(name)["status"] == "FAILED"


@pytest.mark.stack
def test_on_the_stack_a_function_that_never_returns_frees_its_worker_soon_after_its_timeout(
    stack: Stack, tmp_path: Path
) -> None:
    """A worker is not held for the result of a task that has failed: it stops the function
    TIMEOUT_GRACE_SECONDS past its TimeoutSeconds (Lambda would run it to its own timeout, 900 s
    here, but Lambda does not run out of workers). The task's verdict stays the timer's:
    States.Timeout, and nothing of the worker's in the history."""
    machine = f"forever-{uuid.uuid4().hex[:6]}"
    stack.client.register_machine(
        machine, {"StartAt": "T", "States": {"T": lambda_task("runs_until_stopped", TimeoutSeconds=1)}}
    )
    name = stack.client.start_execution(machine, {})
    described = stack.client.wait(name, timeout=60)
    assert (described["status"], described.get("error")) == ("FAILED", "States.Timeout")

    # The stack's one worker runs the next execution once it has stopped the first function.
    after = f"{machine}-after"
    stack.client.register_machine(
        after, {"StartAt": "T", "States": {"T": lambda_task("sleeps_past_its_timeout")}}
    )
    next_one = stack.client.start_execution(after, {"seconds": 0, "marker": str(tmp_path / "after")})
    assert stack.client.wait(next_one, timeout=60)["status"] == "SUCCEEDED", stack.logs_tail()

    assert [event["type"] for event in stack.client.history(name)][-2:] == [
        "LambdaFunctionTimedOut",
        "ExecutionFailed",
    ]
    assert "past its task's TimeoutSeconds" in stack.logs_tail(20_000)


def test_a_function_that_outlives_lambdas_own_timeout_fails_with_sandbox_timedout_at_900_seconds() -> None:
    """ "Troubleshoot invocation issues in Lambda" (AWS Lambda Developer Guide): a function stopped
    at its timeout reports "Task timed out after 900.00 seconds" (900 s, Lambda's longest
    timeout, is every function's here); the worker's job timeout words it the same."""

    def takes_twenty_minutes(event: Any, context: Any) -> Any:
        return "never seen"

    takes_twenty_minutes.virtual_duration_seconds = 1200  # type: ignore[attr-defined]
    definition = {"StartAt": "T", "States": {"T": lambda_task("takes_twenty_minutes")}}
    result = LocalRunner(
        StateMachine.parse(definition, "Timeouts"), {"takes_twenty_minutes": takes_twenty_minutes}
    ).run({}, start=0.0)

    assert (result.status, result.error) == ("FAILED", "Sandbox.Timedout")
    document = json.loads(result.cause)
    assert document["errorType"] == "Sandbox.Timedout"
    assert (
        document["errorMessage"]
        == f"RequestId: {document['requestId']} Error: Task timed out after 900.00 seconds"
    )
    assert kinds(result)[-2:] == ["LambdaFunctionFailed", "ExecutionFailed"]
    assert result.history[-1]["timestamp"] == 900.0
