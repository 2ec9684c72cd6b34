"""TestState of states that run a function, through boto3 against serve + orchestrator + worker:
the function really runs on the worker, and the answer is AWS's (output, error, status, next state)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis
from botocore.config import Config

from orchestrator.api.stepfunctions.test_state_workers import INTERNAL_MACHINE, KEPT_SECONDS
from orchestrator.runtime.client import Client
from orchestrator.runtime.retention import Retention
from orchestrator.settings import Settings
from tests.api_fixtures import REGION, ApiStack, api_stack, role_arn

__all__ = ["api_stack"]  # fixtures, used by name

FUNCTION_ARN = f"arn:aws:lambda:{REGION}:000000000000:function:sleep_and_report"


@pytest.fixture(scope="module")
def sfn(api_stack: ApiStack) -> Any:
    return api_stack.client(config=Config(retries={"max_attempts": 1}, inject_host_prefix=False))


def run(sfn: Any, state: dict[str, Any], given: Any, **extra: Any) -> dict[str, Any]:
    answer = dict(
        sfn.test_state(definition=json.dumps(state), roleArn=role_arn(), input=json.dumps(given), **extra)
    )
    answer.pop("ResponseMetadata")
    return answer


def test_a_lambda_arn_task_runs_the_function_on_a_worker(sfn: Any) -> None:
    state = {
        "Type": "Task",
        "Resource": FUNCTION_ARN,
        "ResultSelector": {"echo.$": "$.event", "pid.$": "$.pid"},
        "ResultPath": "$.ran",
        "Next": "After",
    }
    answer = run(sfn, state, {"seconds": 0.1, "tag": "arn"})
    assert (answer["status"], answer["nextState"]) == ("SUCCEEDED", "After"), answer
    output = json.loads(answer["output"])
    assert output["ran"]["echo"] == {"seconds": 0.1, "tag": "arn"}
    assert output["tag"] == "arn" and isinstance(output["ran"]["pid"], int)


def test_lambda_invoke_and_a_bare_name_run_the_function_too(sfn: Any) -> None:
    invoke = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "sleep_and_report", "Payload.$": "$"},
        "OutputPath": "$.Payload.event",
        "End": True,
    }
    answer = run(sfn, invoke, {"seconds": 0, "tag": "invoke"})
    assert answer == {"status": "SUCCEEDED", "output": '{"seconds":0,"tag":"invoke"}'}
    bare = {"Type": "Task", "Resource": "sleep_and_report", "OutputPath": "$.event.tag", "End": True}
    assert json.loads(run(sfn, bare, {"seconds": 0, "tag": "bare"})["output"]) == "bare"


def test_a_function_error_fails_and_a_catch_or_a_retrier_is_judged(sfn: Any) -> None:
    state: dict[str, Any] = {"Type": "Task", "Resource": FUNCTION_ARN, "End": True}
    failed = run(sfn, state, {"seconds": "not a number"})
    assert (failed["status"], failed["error"]) == ("FAILED", "ValueError")
    assert "not a number" in failed["cause"]

    caught = run(
        sfn,
        {**state, "Catch": [{"ErrorEquals": ["ValueError"], "ResultPath": "$.oops", "Next": "Recover"}]},
        {"seconds": "x"},
        inspectionLevel="DEBUG",
    )
    assert (caught["status"], caught["error"], caught["nextState"]) == (
        "CAUGHT_ERROR",
        "ValueError",
        "Recover",
    )
    assert json.loads(caught["output"])["oops"]["Error"] == "ValueError"
    assert caught["inspectionData"]["errorDetails"] == {"catchIndex": 0}

    retried = run(
        sfn, {**state, "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 4}]}, {"seconds": "x"}
    )
    assert (retried["status"], retried["error"]) == ("RETRIABLE", "ValueError")


def test_a_function_no_worker_registered_answers_as_lambda_does(sfn: Any) -> None:
    answer = run(sfn, {"Type": "Task", "Resource": "no_such_function", "End": True}, {})
    assert (answer["status"], answer["error"]) == ("FAILED", "Lambda.ResourceNotFoundException")
    assert "Function not found" in answer["cause"] and "redstep:" not in answer["cause"]


def test_a_parallel_state_with_a_function_in_a_branch_runs_it(sfn: Any) -> None:
    state = {
        "Type": "Parallel",
        "Branches": [
            {"StartAt": "F", "States": {"F": {"Type": "Task", "Resource": FUNCTION_ARN, "End": True}}},
            {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": "passed", "End": True}}},
        ],
        "Next": "Joined",
    }
    answer = run(sfn, state, {"seconds": 0, "tag": "branch"})
    ran, passed = json.loads(answer["output"])
    assert (ran["event"]["tag"], passed, answer["nextState"]) == ("branch", "passed", "Joined")


def test_the_machine_a_test_runs_on_is_not_listed_and_its_executions_are_swept(
    api_stack: ApiStack, sfn: Any
) -> None:
    run(sfn, {"Type": "Task", "Resource": "sleep_and_report", "End": True}, {"seconds": 0, "tag": "swept"})
    listed = [machine["name"] for machine in sfn.list_state_machines()["stateMachines"]]
    assert not [name for name in listed if "TestState" in name]

    settings = Settings(redis_url=api_stack.env["REDIS_URL"], prefix=api_stack.prefix)
    connection = redis.Redis.from_url(settings.redis_url)
    try:
        client = Client(connection, settings)

        def tested() -> list[str]:
            executions = client.list_executions()
            return [e["name"] for e in executions if e["stateMachine"] == INTERNAL_MACHINE]

        assert tested(), "the tested state ran as an execution of the internal machine"
        later = Retention(connection, settings, clock=lambda: time.time() + KEPT_SECONDS + 60)
        later.sweep(later.clock())
        assert tested() == []
    finally:
        connection.close()


def test_activity_and_callback_tasks_are_refused_as_aws_refuses_them_without_a_mock(sfn: Any) -> None:
    callback = {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken", "End": True}
    activity = {
        "Type": "Task",
        "Resource": f"arn:aws:states:{REGION}:000000000000:activity:dragons",
        "End": True,
    }
    for state in (callback, activity):
        with pytest.raises(sfn.exceptions.ValidationException) as refused:
            run(sfn, state, {})
        assert "mock" in str(refused.value)
