"""Activities through unchanged boto3 code, and the example AWS activity worker, against a live stack."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.runtime.server import RedisServer
from tests.api_fixtures import (
    ACCESS_KEY_ID,
    ACCOUNT,
    REGION,
    SECRET_ACCESS_KEY,
    ApiStack,
    eventually,
    finished,
    role_arn,
    running_stack,
    unique,
)

WORKER = Path(__file__).resolve().parents[1] / "examples" / "activity_worker.py"
SHORT_POLL_SECONDS = "2"
"""GetActivityTask's wait in this module's stack: AWS's 60 s would only slow the empty polls down."""
WORKER_SECONDS = 120.0


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    """serve (with short long polls) and one orchestrator; the activity workers are the tests'."""
    settings = {"REDSTEP_ACTIVITY_POLL_SECONDS": SHORT_POLL_SECONDS}
    logs = tmp_path_factory.mktemp("activities")
    yield from running_stack(redis_server, logs, orchestrator=True, worker=False, settings=settings)


@pytest.fixture(scope="module")
def sfn(stack: ApiStack) -> Any:
    return stack.client()


def activity_machine(activity_arn: str, **timers: int) -> str:
    task = {"Type": "Task", "Resource": activity_arn, "End": True, **timers}
    return json.dumps({"StartAt": "Work", "States": {"Work": task}})


def new_machine(sfn: Any, activity_arn: str, **timers: int) -> str:
    definition = activity_machine(activity_arn, **timers)
    created = sfn.create_state_machine(
        name=unique("activity-machine"), definition=definition, roleArn=role_arn()
    )
    return str(created["stateMachineArn"])


def event_types(sfn: Any, execution_arn: str) -> list[str]:
    return [event["type"] for event in sfn.get_execution_history(executionArn=execution_arn)["events"]]


def test_an_activity_is_created_idempotently_described_listed_in_pages_and_deleted(sfn: Any) -> None:
    name = unique("greeter")
    created = sfn.create_activity(name=name)
    assert created["activityArn"] == f"arn:aws:states:{REGION}:{ACCOUNT}:activity:{name}"
    again = sfn.create_activity(name=name)
    assert again == {**again, "activityArn": created["activityArn"], "creationDate": created["creationDate"]}

    described = sfn.describe_activity(activityArn=created["activityArn"])
    assert (described["name"], described["creationDate"]) == (name, created["creationDate"])

    others = [sfn.create_activity(name=unique("paged"))["activityArn"] for _ in range(3)]
    pages = sfn.get_paginator("list_activities").paginate(PaginationConfig={"PageSize": 2})
    listed = [item["activityArn"] for page in pages for item in page["activities"]]
    assert {created["activityArn"], *others} <= set(listed)
    assert listed == sorted(listed) and len(listed) == len(set(listed))

    sfn.delete_activity(activityArn=created["activityArn"])
    with pytest.raises(sfn.exceptions.ActivityDoesNotExist):
        sfn.describe_activity(activityArn=created["activityArn"])
    with pytest.raises(sfn.exceptions.ActivityDoesNotExist):
        sfn.get_activity_task(activityArn=created["activityArn"])
    with pytest.raises(sfn.exceptions.InvalidArn):
        sfn.describe_activity(activityArn=f"arn:aws:states:eu-west-1:{ACCOUNT}:activity:{name}")
    with pytest.raises(sfn.exceptions.InvalidName):
        sfn.create_activity(name="has space")


def test_a_state_machine_naming_an_activity_that_does_not_exist_is_an_invalid_definition(sfn: Any) -> None:
    missing = f"arn:aws:states:{REGION}:{ACCOUNT}:activity:{unique('nobody')}"
    with pytest.raises(sfn.exceptions.InvalidDefinition, match="Activity does not exist"):
        sfn.create_state_machine(name=unique("m"), definition=activity_machine(missing), roleArn=role_arn())


def test_an_empty_long_poll_answers_without_a_task_token(sfn: Any) -> None:
    arn = sfn.create_activity(name=unique("idle"))["activityArn"]
    answer = sfn.get_activity_task(activityArn=arn, workerName="idle-worker")
    assert "taskToken" not in answer and "input" not in answer


def test_the_example_aws_activity_worker_runs_executions_to_success_and_failure(
    sfn: Any, stack: ApiStack
) -> None:
    activity = sfn.create_activity(name=unique("greeter"))["activityArn"]
    machine = new_machine(sfn, activity)
    greeted = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"name": "Ada"}))["executionArn"]
    nameless = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    env = {
        key: value
        for key, value in stack.env.items()
        if not key.startswith("REDSTEP_") and key != "REDIS_URL"
    }
    env.update(
        AWS_ENDPOINT_URL=stack.url,
        AWS_ACCESS_KEY_ID=ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY,
        AWS_DEFAULT_REGION=REGION,
    )
    worker = subprocess.run(
        [sys.executable, str(WORKER), activity, "--max-tasks", "2", "--worker-name", "example"],
        env=env,
        capture_output=True,
        text=True,
        timeout=WORKER_SECONDS,
        check=False,
    )
    assert worker.returncode == 0, worker.stderr
    assert "answered 2 task(s)" in worker.stdout

    succeeded = finished(sfn, greeted)
    assert (succeeded["status"], json.loads(succeeded["output"])) == (
        "SUCCEEDED",
        {"greeting": "Hello, Ada!"},
    )
    failed = finished(sfn, nameless)
    assert (failed["status"], failed["error"]) == ("FAILED", "MissingName")
    assert event_types(sfn, greeted) == [
        "ExecutionStarted",
        "TaskStateEntered",
        "ActivityScheduled",
        "ActivityStarted",
        "ActivitySucceeded",
        "TaskStateExited",
        "ExecutionSucceeded",
    ]
    events = sfn.get_execution_history(executionArn=greeted)["events"]
    scheduled = events[2]["activityScheduledEventDetails"]
    assert (scheduled["resource"], json.loads(scheduled["input"])) == (activity, {"name": "Ada"})
    assert events[3]["activityStartedEventDetails"] == {"workerName": "example"}
    assert "ActivityFailed" in event_types(sfn, nameless)


def test_a_task_taken_by_a_worker_that_then_dies_ends_in_a_heartbeat_timeout(sfn: Any) -> None:
    activity = sfn.create_activity(name=unique("fragile"))["activityArn"]
    execution = sfn.start_execution(stateMachineArn=new_machine(sfn, activity, HeartbeatSeconds=1))[
        "executionArn"
    ]
    taken = sfn.get_activity_task(activityArn=activity)
    assert taken["taskToken"]  # ... and the worker that took it is never heard from again

    failed = finished(sfn, execution)
    assert (failed["status"], failed["error"]) == ("FAILED", "States.HeartbeatTimeout")
    assert "ActivityTimedOut" in event_types(sfn, execution)
    with pytest.raises(sfn.exceptions.TaskTimedOut):
        sfn.send_task_success(taskToken=taken["taskToken"], output="{}")


def test_a_task_nobody_takes_times_out_and_is_never_handed_out_afterwards(sfn: Any) -> None:
    activity = sfn.create_activity(name=unique("unwatched"))["activityArn"]
    execution = sfn.start_execution(stateMachineArn=new_machine(sfn, activity, TimeoutSeconds=1))[
        "executionArn"
    ]

    failed = finished(sfn, execution)
    assert (failed["status"], failed["error"]) == ("FAILED", "States.Timeout")
    assert event_types(sfn, execution) == [
        "ExecutionStarted",
        "TaskStateEntered",
        "ActivityScheduled",
        "ActivityTimedOut",  # never started: no worker took it
        "ExecutionFailed",
    ]
    assert "taskToken" not in sfn.get_activity_task(activityArn=activity)


def test_a_task_taken_by_a_named_worker_shows_when_and_by_whom_it_started(sfn: Any) -> None:
    activity = sfn.create_activity(name=unique("named"))["activityArn"]
    machine = new_machine(sfn, activity, HeartbeatSeconds=300, TimeoutSeconds=600)
    execution = sfn.start_execution(stateMachineArn=machine, input='{"n": 1}')["executionArn"]
    eventually(
        lambda: "ActivityScheduled" in event_types(sfn, execution), "the activity task to be scheduled"
    )
    assert "ActivityStarted" not in event_types(sfn, execution)  # waiting for a worker

    task = sfn.get_activity_task(activityArn=activity, workerName="render-farm-3")
    eventually(lambda: "ActivityStarted" in event_types(sfn, execution), "the task to show as started")
    sfn.send_task_success(taskToken=task["taskToken"], output='{"n": 2}')
    assert finished(sfn, execution)["status"] == "SUCCEEDED"

    events = sfn.get_execution_history(executionArn=execution)["events"]
    assert [event["type"] for event in events] == [
        "ExecutionStarted",
        "TaskStateEntered",
        "ActivityScheduled",
        "ActivityStarted",
        "ActivitySucceeded",
        "TaskStateExited",
        "ExecutionSucceeded",
    ]
    scheduled, started = events[2], events[3]
    assert started["activityStartedEventDetails"] == {"workerName": "render-farm-3"}
    assert started["previousEventId"] == scheduled["id"]
    assert started["timestamp"] >= scheduled["timestamp"]
    assert scheduled["activityScheduledEventDetails"]["heartbeatInSeconds"] == 300


def test_heartbeat_seconds_do_not_count_while_no_worker_has_taken_the_task(sfn: Any) -> None:
    activity = sfn.create_activity(name=unique("queued"))["activityArn"]
    machine = new_machine(sfn, activity, HeartbeatSeconds=1, TimeoutSeconds=4)
    execution = sfn.start_execution(stateMachineArn=machine)["executionArn"]

    failed = finished(sfn, execution)
    # Only TimeoutSeconds ends a task no worker took: nobody could have sent a heartbeat.
    assert (failed["status"], failed["error"]) == ("FAILED", "States.Timeout")
    assert "ActivityStarted" not in event_types(sfn, execution)


def test_heartbeats_and_success_from_a_worker_complete_the_task(sfn: Any) -> None:
    activity = sfn.create_activity(name=unique("steady"))["activityArn"]
    machine = new_machine(sfn, activity, HeartbeatSeconds=300, TimeoutSeconds=600)
    execution = sfn.start_execution(stateMachineArn=machine, input='{"n": 1}')["executionArn"]
    task = sfn.get_activity_task(activityArn=activity)
    assert json.loads(task["input"]) == {"n": 1}

    sfn.send_task_heartbeat(taskToken=task["taskToken"])
    sfn.send_task_success(taskToken=task["taskToken"], output='{"n": 2}')
    assert json.loads(finished(sfn, execution)["output"]) == {"n": 2}


def test_a_token_from_before_a_retry_is_refused_and_the_retried_one_completes_the_task(sfn: Any) -> None:
    activity = sfn.create_activity(name=unique("retried"))["activityArn"]
    task = {
        "Type": "Task",
        "Resource": activity,
        "TimeoutSeconds": 1,
        "Retry": [{"ErrorEquals": ["States.Timeout"], "IntervalSeconds": 1, "MaxAttempts": 1}],
        "End": True,
    }
    definition = json.dumps({"StartAt": "Work", "States": {"Work": task}})
    machine = sfn.create_state_machine(name=unique("retry"), definition=definition, roleArn=role_arn())
    execution = sfn.start_execution(stateMachineArn=machine["stateMachineArn"])["executionArn"]
    first = sfn.get_activity_task(activityArn=activity)["taskToken"]
    # The first attempt times out unanswered; the retry schedules the task again, with a new token.
    tokens: list[str] = []

    def retried() -> bool:
        tokens.extend(filter(None, [sfn.get_activity_task(activityArn=activity).get("taskToken")]))
        return bool(tokens)

    eventually(retried, "the retried attempt's task")
    with pytest.raises(sfn.exceptions.TaskTimedOut):
        sfn.send_task_success(taskToken=first, output="{}")
    sfn.send_task_success(taskToken=tokens[0], output='{"attempt": 2}')
    assert json.loads(finished(sfn, execution)["output"]) == {"attempt": 2}


def test_task_tokens_are_opaque_and_a_forged_one_is_refused(sfn: Any) -> None:
    activity = sfn.create_activity(name=unique("sealed"))["activityArn"]
    execution_name = unique("opaque")
    sfn.start_execution(stateMachineArn=new_machine(sfn, activity), name=execution_name)
    token = sfn.get_activity_task(activityArn=activity)["taskToken"]
    assert execution_name not in token and ":" not in token

    forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    with pytest.raises(sfn.exceptions.InvalidToken):
        sfn.send_task_success(taskToken=forged, output="{}")
    sfn.send_task_failure(taskToken=token, error="Stop")
