"""TestState through boto3 (``inject_host_prefix=False``: botocore would call a ``sync-`` host):
one state on one input answers its output, next state, error and status as AWS does."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from botocore.config import Config

from tests.api_fixtures import FINISH_SECONDS, ApiStack, role_arn, serve_only, unique
from tests.test_api_sns import client as sns_client

__all__ = ["serve_only"]


@pytest.fixture(scope="module")
def sfn(serve_only: ApiStack) -> Any:
    return serve_only.client(config=Config(retries={"max_attempts": 1}, inject_host_prefix=False))


def run(sfn: Any, state: dict[str, Any], given: Any = None, **extra: Any) -> dict[str, Any]:
    request: dict[str, Any] = {"definition": json.dumps(state), "roleArn": role_arn(), **extra}
    if given is not None:
        request["input"] = json.dumps(given)
    answer = sfn.test_state(**request)
    answer.pop("ResponseMetadata")
    return dict(answer)


def test_a_pass_state_answers_its_output_and_next_state(sfn: Any) -> None:
    state = {
        "Type": "Pass",
        "Parameters": {"sum.$": "States.MathAdd($.a, $.b)"},
        "ResultPath": "$.r",
        "Next": "Done",
    }
    answer = run(sfn, state, {"a": 2, "b": 3})
    assert answer["status"] == "SUCCEEDED"
    assert json.loads(answer["output"]) == {"a": 2, "b": 3, "r": {"sum": 5}}
    assert answer["nextState"] == "Done"


def test_a_choice_state_answers_the_branch_it_takes(sfn: Any) -> None:
    state = {
        "Type": "Choice",
        "Choices": [{"Variable": "$.n", "NumericGreaterThan": 10, "Next": "Big"}],
        "Default": "Small",
    }
    assert run(sfn, state, {"n": 11})["nextState"] == "Big"
    assert run(sfn, state, {"n": 1})["nextState"] == "Small"
    no_default = {"Type": "Choice", "Choices": state["Choices"]}
    failed = run(sfn, no_default, {"n": 1})
    assert failed["status"] == "FAILED" and failed["error"].startswith("States.")


def test_a_fail_state_answers_its_error_and_cause(sfn: Any) -> None:
    answer = run(sfn, {"Type": "Fail", "Error": "Dragon.Escaped", "Cause": "the gate was open"})
    assert answer == {"status": "FAILED", "error": "Dragon.Escaped", "cause": "the gate was open"}


def test_a_wait_state_answers_at_once_and_an_end_state_has_no_next(sfn: Any) -> None:
    answer = run(sfn, {"Type": "Wait", "Seconds": 3600, "End": True}, {"x": 1})
    assert answer == {"status": "SUCCEEDED", "output": '{"x":1}'}


def test_a_state_of_a_whole_definition_is_chosen_by_state_name(sfn: Any) -> None:
    definition = {
        "StartAt": "First",
        "States": {
            "First": {"Type": "Pass", "Next": "Second"},
            "Second": {"Type": "Pass", "Result": "two", "Next": "Second"},
        },
    }
    answer = run(sfn, definition, {}, stateName="Second")
    assert (answer["output"], answer["nextState"]) == ('"two"', "Second")


def test_debug_inspection_data_carries_the_input(sfn: Any) -> None:
    answer = run(sfn, {"Type": "Pass", "End": True}, {"k": "v"}, inspectionLevel="DEBUG")
    assert json.loads(answer["inspectionData"]["input"]) == {"k": "v"}
    assert "inspectionData" not in run(sfn, {"Type": "Pass", "End": True}, {"k": "v"})


def test_an_sns_publish_task_really_publishes_and_a_caught_error_is_answered(
    serve_only: ApiStack, sfn: Any
) -> None:
    topic = unique("tested")
    sns_client(serve_only, "sns").create_topic(Name=topic)  # a topic that does not exist fails the task
    state = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sns:publish",
        "Parameters": {"TopicArn": f"arn:aws:sns:us-east-1:000000000000:{topic}", "Message.$": "$.text"},
        "ResultSelector": {"id.$": "$.MessageId"},
        "Next": "After",
    }
    answer = run(sfn, state, {"text": "tested alone"})
    assert answer["status"] == "SUCCEEDED" and answer["nextState"] == "After"
    message_id = json.loads(answer["output"])["id"]
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "producer.cli",
            "subscribe",
            "--topic",
            topic,
            "--replay",
            "--json",
            "--count",
            "1",
        ],
        env=serve_only.env,
        capture_output=True,
        text=True,
        timeout=FINISH_SECONDS,
        check=True,
    )
    assert json.loads(shown.stdout.splitlines()[0])["MessageId"] == message_id

    failing = {**state, "Parameters": {**state["Parameters"], "Message.$": "States.StringToJson($.text)"}}
    failed = run(sfn, failing, {"text": "not json"})
    assert failed["status"] == "FAILED" and failed["error"] == "States.IntrinsicFailure"

    caught = run(
        sfn,
        {**failing, "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.oops", "Next": "Recover"}]},
        {"text": "not json"},
    )
    assert (caught["status"], caught["nextState"], caught["error"]) == (
        "CAUGHT_ERROR",
        "Recover",
        "States.IntrinsicFailure",
    )
    assert json.loads(caught["output"])["oops"]["Error"] == "States.IntrinsicFailure"


def test_an_error_a_retrier_would_retry_answers_retriable_and_a_caught_one_its_catch(sfn: Any) -> None:
    failing = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sns:publish",
        "Parameters": {
            "TopicArn": "arn:aws:sns:us-east-1:000000000000:t",
            "Message.$": "States.StringToJson($.s)",
        },
        "Catch": [
            {"ErrorEquals": ["Other.Error"], "Next": "Elsewhere"},
            {"ErrorEquals": ["States.ALL"], "Next": "Recover"},
        ],
        "End": True,
    }
    retried = run(
        sfn,
        {**failing, "Retry": [{"ErrorEquals": ["States.IntrinsicFailure"], "IntervalSeconds": 7}]},
        {"s": "x"},
        inspectionLevel="DEBUG",
    )
    assert (retried["status"], retried["error"]) == ("RETRIABLE", "States.IntrinsicFailure")
    assert "nextState" not in retried
    assert retried["inspectionData"]["errorDetails"] == {"retryIndex": 0, "retryBackoffIntervalSeconds": 7}

    caught = run(sfn, failing, {"s": "x"}, inspectionLevel="DEBUG")
    assert (caught["status"], caught["nextState"]) == ("CAUGHT_ERROR", "Recover")
    assert caught["inspectionData"]["errorDetails"] == {"catchIndex": 1}


def test_a_function_task_with_no_worker_fails_as_a_missing_function_does_and_says_why(sfn: Any) -> None:
    function_task = {
        "Type": "Task",
        "Resource": "arn:aws:lambda:us-east-1:000000000000:function:f",
        "Next": "After",
    }
    failed = run(sfn, function_task, {"x": 1})
    assert (failed["status"], failed["error"]) == ("FAILED", "Lambda.ResourceNotFoundException")
    assert "Function not found" in failed["cause"] and "no orchestrator is running" in failed["cause"]

    caught = run(
        sfn, {**function_task, "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Recover"}]}, {"x": 1}
    )
    assert (caught["status"], caught["nextState"]) == ("CAUGHT_ERROR", "Recover")
    function_in_a_branch = {
        "Type": "Parallel",
        "Branches": [{"StartAt": "F", "States": {"F": {"Type": "Task", "Resource": "f", "End": True}}}],
        "End": True,
    }
    assert run(sfn, function_in_a_branch)["error"] == "Lambda.ResourceNotFoundException"


def test_bad_input_is_refused_with_aws_errors(sfn: Any) -> None:
    with pytest.raises(sfn.exceptions.ValidationException):
        run(sfn, {"Type": "Task", "Resource": "arn:aws:states:::sns:publish.waitForTaskToken", "End": True})
    with pytest.raises(sfn.exceptions.InvalidDefinition):
        run(sfn, {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:putItem", "End": True})
    with pytest.raises(sfn.exceptions.InvalidDefinition):
        sfn.test_state(definition="{not json", roleArn=role_arn())
    with pytest.raises(sfn.exceptions.InvalidDefinition):
        run(sfn, {"Type": "Pass"})  # neither Next nor End
    with pytest.raises(sfn.exceptions.InvalidDefinition):
        run(sfn, {"Type": "Task", "Resource": "f"})  # a function Task is validated before it runs
    with pytest.raises(sfn.exceptions.InvalidExecutionInput):
        sfn.test_state(definition=json.dumps({"Type": "Pass", "End": True}), roleArn=role_arn(), input="{bad")


def test_a_parallel_state_runs_its_branches(sfn: Any) -> None:
    state = {
        "Type": "Parallel",
        "Branches": [
            {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": 1, "End": True}}},
            {"StartAt": "B", "States": {"B": {"Type": "Pass", "Result": 2, "End": True}}},
        ],
        "Next": "Joined",
    }
    answer = run(sfn, state, {})
    assert (json.loads(answer["output"]), answer["nextState"]) == ([1, 2], "Joined")


def test_a_send_message_task_fails_for_a_queue_that_does_not_exist_as_in_an_execution(sfn: Any) -> None:
    state = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage",
        "Parameters": {"QueueUrl": f"http://localhost/000000000000/{unique('absent')}", "MessageBody": "hi"},
        "End": True,
    }

    answer = run(sfn, state, {})

    assert (answer["status"], answer["error"]) == ("FAILED", "SQS.QueueDoesNotExistException")
    assert answer["cause"].startswith("The specified queue does not exist. (Service: AmazonSQS;")


def test_a_send_message_task_sends_under_the_message_id_its_result_names(
    serve_only: ApiStack, sfn: Any
) -> None:
    sqs = sns_client(serve_only, "sqs")
    url = sqs.create_queue(QueueName=unique("tested"))["QueueUrl"]
    state = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage",
        "Parameters": {"QueueUrl": url, "MessageBody.$": "$.text"},
        "End": True,
    }

    answer = run(sfn, state, {"text": "sent alone"})

    assert answer["status"] == "SUCCEEDED", answer
    (received,) = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)["Messages"]
    assert received["Body"] == "sent alone"
    assert received["MessageId"] == json.loads(answer["output"])["MessageId"]
