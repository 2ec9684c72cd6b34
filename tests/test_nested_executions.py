"""Nested executions: a Task that starts another state machine with ``states:startExecution``.

"Start a new AWS Step Functions state machine from a running execution"
(connect-stepfunctions.html) and "Start workflow executions from a task state"
(concepts-nested-workflows.html): the request-response task's result is StartExecution's
response; ``.sync`` records it as TaskSubmitted and waits for the child's end, whose
DescribeExecution is the result (input and output as JSON text; ``.sync:2`` as JSON values); a
child that does not succeed fails the task with ``States.TaskFailed``, the description as the
cause; ``.waitForTaskToken`` waits for the token's answer. The history event sequences follow
the ones AWS recorded for these integrations (TaskScheduled, TaskStarted, TaskSubmitted,
TaskSucceeded or TaskFailed, resource ``startExecution.sync``, resource type ``states``).

The same definitions run in the local runner (its ``machines``) and on Redis (an orchestrator
and a worker in this process).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator.asl.definition import StateMachine
from orchestrator.asl.errors import DefinitionError
from orchestrator.local import LocalRunner
from orchestrator.runtime.callbacks import send_task_success
from orchestrator.runtime.client import Client
from orchestrator.runtime.doctor import check
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.loop import Orchestrator
from orchestrator.runtime.server import RedisServer
from orchestrator.settings import Settings
from tests.conformance.stack import running_stack, stack_settings
from tests.runtime_fixtures import LAMBDA, dragon
from worker.process import task_worker

MACHINE_ARN = "arn:aws:states:us-east-1:000000000000:stateMachine:"
CHILD = {
    "StartAt": "Greet",
    "States": {"Greet": {"Type": "Pass", "Parameters": {"hello.$": "$.who"}, "End": True}},
}
WAITING = {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 3600, "End": True}}}
FAILING = {
    "StartAt": "Fail",
    "States": {"Fail": {"Type": "Fail", "Error": "SomeFailure", "Cause": "it broke"}},
}


def parent(resource: str, target: str = "Child", **parameters: Any) -> dict[str, Any]:
    """A machine of one task that starts ``target`` with ``resource``."""
    arguments = {
        "StateMachineArn": MACHINE_ARN + target,
        "Input": {"who": "world"},
        "Name": "kid",
        **parameters,
    }
    task = {
        "Type": "Task",
        "Resource": f"arn:aws:states:::states:{resource}",
        "Parameters": arguments,
        "End": True,
    }
    return {"StartAt": "Start", "States": {"Start": task}}


def run_locally(definition: dict[str, Any]) -> Any:
    machines = {
        "Child": StateMachine.parse(CHILD, "Child"),
        "Failing": StateMachine.parse(FAILING, "Failing"),
    }
    return LocalRunner(StateMachine.parse(definition, "Parent"), machines=machines).run({})


def task_events(history: list[dict[str, Any]]) -> list[tuple[str, str | None, str | None]]:
    return [
        (e["type"], e.get("resource"), e.get("resourceType")) for e in history if e["type"].startswith("Task")
    ]


# -- in the local runner -------------------------------------------------------------------------


def test_sync_2_waits_for_the_child_and_returns_its_description_with_json_values() -> None:
    result = run_locally(parent("startExecution.sync:2"))

    assert result.status == "SUCCEEDED"
    output = result.output
    assert (output["Input"], output["Output"]) == ({"who": "world"}, {"hello": "world"})
    assert output["ExecutionArn"] == "arn:aws:states:us-east-1:000000000000:execution:Child:kid"
    assert (output["Name"], output["Status"], output["StateMachineArn"]) == (
        "kid",
        "SUCCEEDED",
        MACHINE_ARN + "Child",
    )
    assert output["InputDetails"] == output["OutputDetails"] == {"Included": True}
    assert isinstance(output["StartDate"], int) and output["StopDate"] >= output["StartDate"]
    resource = ("startExecution.sync:2", "states")
    assert task_events(result.history) == [
        ("TaskStateEntered", None, None),
        ("TaskScheduled", *resource),
        ("TaskStarted", *resource),
        ("TaskSubmitted", *resource),
        ("TaskSucceeded", *resource),
        ("TaskStateExited", None, None),
    ]
    submitted = next(e for e in result.history if e["type"] == "TaskSubmitted")
    assert submitted["output"]["ExecutionArn"] == output["ExecutionArn"]


def test_sync_gives_the_childs_input_and_output_as_json_text() -> None:
    output = run_locally(parent("startExecution.sync")).output

    assert (output["Input"], output["Output"]) == ('{"who":"world"}', '{"hello":"world"}')


def test_a_child_that_fails_fails_the_task_with_states_task_failed_and_its_description() -> None:
    result = run_locally(parent("startExecution.sync", "Failing"))

    assert (result.status, result.error) == ("FAILED", "States.TaskFailed")
    cause = json.loads(result.cause)
    assert (cause["Status"], cause["Error"], cause["Cause"]) == ("FAILED", "SomeFailure", "it broke")
    assert "Output" not in cause


# aws-sdk:sfn:startExecution: Request Response (or a callback), its result StartExecution's answer
# alone and its errors worded by the SDK, as AWS recorded them (LocalStack's snapshots of real
# executions: test_aws_sdk_task_service test_sfn_start_execution gave exactly {"ExecutionArn",
# "StartDate"} and events of resourceType "aws-sdk:sfn", resource "startExecution"; aws-sdk:sfn
# refusals read "Sfn.<Code>Exception", "<message> (Service: Sfn, Status Code: 400, Request ID: ...)").
SDK_START = "arn:aws:states:::aws-sdk:sfn:startExecution"


def sdk_parent(target: str = "Child") -> dict[str, Any]:
    definition = parent("startExecution", target)
    definition["States"]["Start"]["Resource"] = SDK_START
    return definition


def test_aws_sdk_start_execution_returns_the_apis_answer_alone_and_the_child_runs() -> None:
    result = run_locally(sdk_parent())

    assert result.status == "SUCCEEDED", result.cause
    assert set(result.output) == {"ExecutionArn", "StartDate"}
    assert result.output["ExecutionArn"] == "arn:aws:states:us-east-1:000000000000:execution:Child:kid"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", result.output["StartDate"])
    resource = ("startExecution", "aws-sdk:sfn")
    assert task_events(result.history) == [
        ("TaskStateEntered", None, None),
        ("TaskScheduled", *resource),
        ("TaskStarted", *resource),
        ("TaskSucceeded", *resource),
        ("TaskStateExited", None, None),
    ]


def test_aws_sdk_start_execution_is_refused_in_the_sdks_words() -> None:
    result = run_locally(sdk_parent("Nowhere"))

    assert (result.status, result.error) == ("FAILED", "Sfn.StateMachineDoesNotExistException")
    assert re.fullmatch(
        r"State Machine Does Not Exist: 'arn:aws:states:us-east-1:000000000000:stateMachine:Nowhere' "
        r"\(Service: Sfn, Status Code: 400, Request ID: [0-9a-f-]{36}\) \(SDK Attempt Count: 1\)",
        result.cause,
    )


def test_aws_sdk_start_execution_has_no_run_a_job_pattern() -> None:
    definition = sdk_parent()
    definition["States"]["Start"]["Resource"] = SDK_START + ".sync"

    with pytest.raises(DefinitionError, match="unsupported resource"):
        StateMachine.parse(definition, "Parent")


def test_request_response_returns_the_start_and_does_not_wait() -> None:
    result = run_locally(parent("startExecution", "Failing"))

    assert result.status == "SUCCEEDED"  # the child's failure is not the task's
    assert result.output["ExecutionArn"] == "arn:aws:states:us-east-1:000000000000:execution:Failing:kid"
    assert result.output["SdkHttpMetadata"]["HttpStatusCode"] == 200
    assert [e["type"] for e in result.history if e["type"].startswith("Task")][1:4] == [
        "TaskScheduled",
        "TaskStarted",
        "TaskSucceeded",
    ]


@pytest.mark.parametrize(
    ("definition", "error"),
    [
        (parent("startExecution.sync", "Nowhere"), "StepFunctions.StateMachineDoesNotExistException"),
        (parent("startExecution.sync", Input="{not json"), "StepFunctions.InvalidExecutionInputException"),
        (parent("startExecution.sync", StateMachineArn="Child"), "StepFunctions.InvalidArnException"),
        (parent("startExecution.sync", Name="no spaces allowed"), "StepFunctions.InvalidNameException"),
    ],
)
def test_a_start_that_is_refused_fails_the_task_with_the_service_error(definition: dict, error: str) -> None:
    result = run_locally(definition)

    assert (result.status, result.error) == ("FAILED", error)
    assert "(Service: AWSStepFunctions; Status Code: 400; Error Code: " in result.cause


def test_a_name_started_twice_is_refused_the_second_time() -> None:
    twice = parent("startExecution.sync:2")
    twice["States"]["Start"]["Next"] = "Again"
    del twice["States"]["Start"]["End"]
    twice["States"]["Again"] = parent("startExecution.sync:2")["States"]["Start"]

    result = run_locally(twice)

    assert (result.status, result.error) == ("FAILED", "StepFunctions.ExecutionAlreadyExistsException")


def test_a_machine_that_starts_itself_without_end_fails_clearly_in_the_local_runner() -> None:
    endless = parent("startExecution.sync:2", "Endless", Name=None)
    del endless["States"]["Start"]["Parameters"]["Name"]
    machine = StateMachine.parse(endless, "Endless")

    result = LocalRunner(machine, machines={"Endless": machine}).run({})

    assert (result.status, result.error) == ("FAILED", "States.TaskFailed")
    assert "at most 20 deep" in result.cause


# -- on Redis ------------------------------------------------------------------------------------


def run_on_redis(redis_client: redis.Redis, settings: Settings, definition: dict[str, Any]) -> Client:
    """Start Parent with ``definition`` and drive an orchestrator and a worker until nothing runs."""
    client = Client(redis_client, settings)
    client.register_machine("Child", CHILD)
    client.register_machine("Failing", FAILING)
    client.register_machine("Parent", definition)
    client.start_execution("Parent", {}, name="parent")
    drive_until_nothing_runs(redis_client, settings, client)
    return client


def drive_until_nothing_runs(redis_client: redis.Redis, settings: Settings, client: Client) -> None:
    orchestrator = Orchestrator(redis_client, settings, "o1")
    worker = task_worker(redis_client, settings)
    deadline = time.monotonic() + 30
    while client.status()["executions"]["RUNNING"]:
        assert time.monotonic() < deadline, client.status()
        orchestrator.run_once()
        worker.work(burst=True, logging_level="WARNING")


def test_on_redis_sync_2_runs_a_child_with_a_function_and_returns_its_output(
    redis_client: redis.Redis, settings: Settings
) -> None:
    child = {
        "StartAt": "Validate",
        "States": {"Validate": {"Type": "Task", "Resource": LAMBDA + "ValidateDragon", "End": True}},
    }
    client = Client(redis_client, settings)
    client.register_machine("Validating", child)
    definition = parent("startExecution.sync:2", "Validating", Input=dragon("Nested"))

    run_on_redis(redis_client, settings, definition)

    described = client.describe("parent")
    assert described is not None and described["status"] == "SUCCEEDED", described
    assert described["output"]["Output"] == client.describe("kid")["output"]
    assert described["output"]["Status"] == "SUCCEEDED"
    history = client.history("parent")
    assert [t for t, *_ in task_events(history)][1:5] == [
        "TaskScheduled",
        "TaskStarted",
        "TaskSubmitted",
        "TaskSucceeded",
    ]
    assert client.describe("kid")["stateMachine"] == "Validating"


def test_on_redis_a_failing_child_fails_a_sync_task_and_a_catch_takes_it(
    redis_client: redis.Redis, settings: Settings
) -> None:
    definition = parent("startExecution.sync", "Failing")
    definition["States"]["Start"]["Catch"] = [{"ErrorEquals": ["States.TaskFailed"], "Next": "Caught"}]
    definition["States"]["Caught"] = {"Type": "Pass", "End": True}

    client = run_on_redis(redis_client, settings, definition)

    described = client.describe("parent")
    assert described["status"] == "SUCCEEDED"
    caught = described["output"]
    assert caught["Error"] == "States.TaskFailed"
    assert json.loads(caught["Cause"])["Error"] == "SomeFailure"
    assert client.describe("kid")["status"] == "FAILED"
    # The child ended in the commit that started it: its end still comes after its start.
    assert [t for t, *_ in task_events(client.history("parent"))][1:5] == [
        "TaskScheduled",
        "TaskStarted",
        "TaskSubmitted",
        "TaskFailed",
    ]


def test_on_redis_request_response_returns_the_childs_arn_and_the_child_runs(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client = run_on_redis(redis_client, settings, parent("startExecution"))

    described = client.describe("parent")
    assert described["output"]["ExecutionArn"] == "arn:aws:states:us-east-1:000000000000:execution:Child:kid"
    assert client.describe("kid")["output"] == {"hello": "world"}


def test_on_redis_aws_sdk_start_execution_starts_the_child_and_answers_in_the_sdks_shape(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client = run_on_redis(redis_client, settings, sdk_parent())

    described = client.describe("parent")
    assert set(described["output"]) == {"ExecutionArn", "StartDate"}
    assert client.describe("kid")["output"] == {"hello": "world"}
    scheduled = next(e for e in client.history("parent") if e["type"] == "TaskScheduled")
    assert (scheduled["resourceType"], scheduled["resource"]) == ("aws-sdk:sfn", "startExecution")


def test_on_redis_aws_sdk_start_execution_of_a_missing_machine_fails_in_the_sdks_words(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client = run_on_redis(redis_client, settings, sdk_parent("Nowhere"))

    described = client.describe("parent")
    assert (described["status"], described["error"]) == ("FAILED", "Sfn.StateMachineDoesNotExistException")
    assert "(Service: Sfn, Status Code: 400, Request ID: " in described["cause"]
    assert client.describe("kid") is None


def test_on_redis_a_refused_start_fails_the_task_and_starts_nothing(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client = run_on_redis(redis_client, settings, parent("startExecution.sync", "Nowhere"))

    described = client.describe("parent")
    assert (described["status"], described["error"]) == (
        "FAILED",
        "StepFunctions.StateMachineDoesNotExistException",
    )
    assert client.describe("kid") is None


def test_on_redis_a_name_already_taken_is_refused_and_its_execution_left_alone(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client = Client(redis_client, settings)
    client.register_machine("Waiting", WAITING)
    client.start_execution("Waiting", {"who": "someone else"}, name="kid")
    client.register_machine("Child", CHILD)
    client.register_machine("Parent", parent("startExecution.sync:2"))
    client.start_execution("Parent", {}, name="parent")

    orchestrator = Orchestrator(redis_client, settings, "o1")
    deadline = time.monotonic() + 30
    while client.describe("parent")["status"] == "RUNNING":
        assert time.monotonic() < deadline, client.status()
        orchestrator.run_once()
    for _ in range(3):  # anything the parent's end asked for is taken too
        orchestrator.run_once()

    described = client.describe("parent")
    assert (described["status"], described["error"]) == (
        "FAILED",
        "StepFunctions.ExecutionAlreadyExistsException",
    )
    kid = client.describe("kid")
    assert (kid["stateMachine"], kid["status"], kid["input"]) == (
        "Waiting",
        "RUNNING",
        {"who": "someone else"},
    )


def test_on_redis_a_parent_stopped_as_its_child_starts_leaves_nothing_running(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client = Client(redis_client, settings)
    client.register_machine("Waiting", WAITING)
    client.register_machine("Parent", parent("startExecution.sync:2", "Waiting"))
    client.start_execution("Parent", {}, name="parent")
    client.stop_execution("parent")  # read in the same batch as the child's start

    orchestrator = Orchestrator(redis_client, settings, "o1")
    for _ in range(4):
        orchestrator.run_once()

    assert client.describe("parent")["status"] == "ABORTED"
    kid = client.describe("kid")
    assert kid is None or kid["status"] == "ABORTED", kid
    assert check(redis_client, settings) == []


def child_waiting(
    redis_client: redis.Redis, settings: Settings, definition: dict[str, Any]
) -> tuple[Client, Orchestrator]:
    """Parent (``definition``) started, with its child "kid" of Waiting started and waiting an hour."""
    client = Client(redis_client, settings)
    client.register_machine("Waiting", WAITING)
    client.register_machine("Parent", definition)
    client.start_execution("Parent", {}, name="parent")
    orchestrator = Orchestrator(redis_client, settings, "o1")
    deadline = time.monotonic() + 30
    while client.describe("kid") is None:
        assert time.monotonic() < deadline, client.status()
        orchestrator.run_once()
    return client, orchestrator


def test_on_redis_a_stopped_child_fails_the_task_waiting_for_it(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client, _ = child_waiting(redis_client, settings, parent("startExecution.sync:2", "Waiting"))

    client.stop_execution("kid", error="Halted", cause="by hand")
    drive_until_nothing_runs(redis_client, settings, client)

    described = client.describe("parent")
    assert (described["status"], described["error"]) == ("FAILED", "States.TaskFailed")
    assert json.loads(described["cause"])["Status"] == "ABORTED"


def test_on_redis_the_doctor_counts_a_running_child_as_what_moves_its_sync_parent(
    redis_client: redis.Redis, settings: Settings
) -> None:
    definition = parent("startExecution.sync:2", "Waiting")
    client = Client(redis_client, settings)
    client.register_machine("Waiting", WAITING)
    client.register_machine("Parent", definition)
    client.start_execution("Parent", {}, name="parent")
    asked = check(redis_client, settings)  # the child's start is still on the event stream
    child_waiting(redis_client, settings, definition)  # the child runs

    assert asked == check(redis_client, settings) == []


@pytest.mark.parametrize("ends", ["parent stopped", "task timed out"])
def test_on_redis_a_child_its_sync_task_no_longer_waits_for_is_stopped(
    redis_client: redis.Redis, settings: Settings, ends: str
) -> None:
    definition = parent("startExecution.sync:2", "Waiting")
    definition["States"]["Start"]["TimeoutSeconds"] = 60
    client, orchestrator = child_waiting(redis_client, settings, definition)

    if ends == "parent stopped":
        client.stop_execution("parent")
    else:
        orchestrator = Orchestrator(redis_client, settings, "o2", clock=lambda: time.time() + 61)
    for _ in range(4):
        orchestrator.run_once()

    assert client.describe("parent")["status"] == ("ABORTED" if ends == "parent stopped" else "FAILED")
    child = client.describe("kid")
    assert child["status"] == "ABORTED"
    assert child["cause"] == "its parent execution parent no longer waits for it"


def test_on_redis_wait_for_task_token_hands_the_child_a_token_its_answer_completes(
    redis_client: redis.Redis, settings: Settings
) -> None:
    definition = parent("startExecution.waitForTaskToken", "Waiting", Input={"token.$": "$$.Task.Token"})
    client, orchestrator = child_waiting(redis_client, settings, definition)

    send_task_success(
        redis_client, settings, client.describe("kid")["input"]["token"], {"answered": True}, sealed_only=True
    )
    for _ in range(3):
        orchestrator.run_once()

    assert client.describe("parent")["output"] == {"answered": True}


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({}, "missing or non-string field(s): parent"),
        ({"parent": "p", "sync": 3}, "sync is not 0, 1 or 2"),
        ({"parent": "p", "sdk": "yes"}, "sdk is not true or false"),
    ],
)
def test_on_redis_a_malformed_start_event_is_moved_aside_and_starts_nothing(
    redis_client: redis.Redis, settings: Settings, fields: dict[str, Any], reason: str
) -> None:
    keys = Keys(settings.prefix)
    Client(redis_client, settings).register_machine("Child", CHILD)
    forged = {"type": "StartExecution", "execution": "kid", "token": "kid:1", "machine": "Child", **fields}
    redis_client.xadd(keys.events, {"event": json.dumps(forged)})

    Orchestrator(redis_client, settings, "o1").run_once()

    [(_, moved)] = redis_client.xrange(keys.malformed)
    assert moved[b"reason"] == reason.encode()
    assert Client(redis_client, settings).describe("kid") is None


# -- on a stack of real processes ------------------------------------------------------------------


def shout(event: Any, context: Any) -> Any:
    """A function the stack's worker runs for the child."""
    return {"loud": str(event["who"]).upper()}


@pytest.mark.stack
def test_on_the_stack_a_sync_child_runs_on_a_worker_and_its_parent_gets_its_output(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    settings, env = stack_settings(redis_server.url, "nested")
    with running_stack(settings, env, [Path(__file__).resolve()], tmp_path, workers=1) as stack:
        child = {
            "StartAt": "Shout",
            "States": {"Shout": {"Type": "Task", "Resource": LAMBDA + "shout", "End": True}},
        }
        stack.client.register_machine("Shouting", child)
        definition = parent("startExecution.sync:2", "Shouting", Input={"who.$": "$.who"})
        definition["States"]["Start"]["Parameters"].pop("Name")  # a new UUID for each child
        definition["States"]["Start"]["OutputPath"] = "$.Output"
        stack.client.register_machine("Parent", definition)

        names = [stack.client.start_execution("Parent", {"who": f"dragon {i}"}) for i in range(20)]

        described = [stack.client.wait(name, timeout=60) for name in names]
        children = [e for e in stack.client.list_executions(limit=100) if e["stateMachine"] == "Shouting"]
    assert [d["output"] for d in described] == [{"loud": f"DRAGON {i}"} for i in range(20)]
    assert len(children) == 20 and {c["status"] for c in children} == {"SUCCEEDED"}
