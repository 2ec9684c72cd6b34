"""Step Functions through unchanged boto3 code against a live ``redstep serve``."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from tests.api_fixtures import (
    ACCOUNT,
    ApiStack,
    api_stack,
    eventually,
    finished,
    pass_machine,
    role_arn,
    sfn,
    unique,
    wait_machine,
)

__all__ = ["api_stack", "sfn"]  # fixtures, used by name


def create(sfn: Any, definition: str, stem: str = "machine") -> str:
    return str(
        sfn.create_state_machine(name=unique(stem), definition=definition, roleArn=role_arn())[
            "stateMachineArn"
        ]
    )


def event_types(sfn: Any, execution_arn: str) -> list[str]:
    return [event["type"] for event in sfn.get_execution_history(executionArn=execution_arn)["events"]]


# -- state machines ------------------------------------------------------------------------------


def test_a_state_machine_is_created_described_updated_and_deleted(sfn: Any) -> None:
    name = unique("lifecycle")
    created = sfn.create_state_machine(name=name, definition=pass_machine({"v": 1}), roleArn=role_arn())
    arn = created["stateMachineArn"]
    assert arn == f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:{name}"

    described = sfn.describe_state_machine(stateMachineArn=arn)
    assert (described["name"], described["roleArn"], described["type"]) == (name, role_arn(), "STANDARD")
    assert json.loads(described["definition"]) == json.loads(pass_machine({"v": 1}))
    assert described["creationDate"] == created["creationDate"]

    again = sfn.create_state_machine(name=name, definition=pass_machine({"v": 1}), roleArn=role_arn())
    assert again["creationDate"] == created["creationDate"]
    with pytest.raises(sfn.exceptions.StateMachineAlreadyExists):
        sfn.create_state_machine(name=name, definition=pass_machine({"v": 2}), roleArn=role_arn())

    new_role = f"arn:aws:iam::{ACCOUNT}:role/other"
    sfn.update_state_machine(stateMachineArn=arn, definition=pass_machine({"v": 2}), roleArn=new_role)
    updated = sfn.describe_state_machine(stateMachineArn=arn)
    assert json.loads(updated["definition"]) == json.loads(pass_machine({"v": 2}))
    assert updated["roleArn"] == new_role

    sfn.delete_state_machine(stateMachineArn=arn)
    with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
        sfn.describe_state_machine(stateMachineArn=arn)
    listed = [
        m["name"]
        for page in sfn.get_paginator("list_state_machines").paginate()
        for m in page["stateMachines"]
    ]
    assert name not in listed


def test_list_state_machines_pages_through_more_machines_than_max_results(sfn: Any) -> None:
    names = {unique("paged") for _ in range(7)}
    for name in names:
        sfn.create_state_machine(name=name, definition=pass_machine(), roleArn=role_arn())

    pages = list(sfn.get_paginator("list_state_machines").paginate(PaginationConfig={"PageSize": 3}))

    listed = [machine["name"] for page in pages for machine in page["stateMachines"]]
    assert names <= set(listed)
    assert len(listed) == len(set(listed)), "no machine is listed twice"
    assert len(pages) >= 3 and all(len(page["stateMachines"]) <= 3 for page in pages)


def test_an_invalid_definition_is_refused_with_each_problem_and_nothing_is_created(sfn: Any) -> None:
    name = unique("invalid")
    broken = json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}})
    with pytest.raises(sfn.exceptions.InvalidDefinition) as refused:
        sfn.create_state_machine(name=name, definition=broken, roleArn=role_arn())
    assert "/States/A/Next" in str(refused.value) and "Nowhere" in str(refused.value)
    with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
        sfn.describe_state_machine(stateMachineArn=f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:{name}")


def test_validate_state_machine_definition_answers_with_the_validators_diagnostics(sfn: Any) -> None:
    broken = json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}})
    failed = sfn.validate_state_machine_definition(definition=broken)
    assert failed["result"] == "FAIL"
    assert {
        "severity": "ERROR",
        "code": "SCHEMA_VALIDATION_FAILED",
        "location": "/States/A/Next",
    }.items() <= (failed["diagnostics"][0].items())

    assert sfn.validate_state_machine_definition(definition=pass_machine())["result"] == "OK"
    not_json = sfn.validate_state_machine_definition(definition="{not json")
    assert (not_json["result"], not_json["diagnostics"][0]["code"]) == ("FAIL", "INVALID_JSON_DESCRIPTION")


# -- executions ----------------------------------------------------------------------------------


def test_an_execution_is_started_described_and_its_history_read(sfn: Any) -> None:
    machine = create(sfn, pass_machine({"done": True}))
    started = sfn.start_execution(stateMachineArn=machine, name=unique("run"), input='{"n": 1}')

    described = finished(sfn, started["executionArn"])

    assert described["status"] == "SUCCEEDED"
    assert (json.loads(described["input"]), json.loads(described["output"])) == ({"n": 1}, {"done": True})
    assert described["stateMachineArn"] == machine and described["startDate"] == started["startDate"]
    history = sfn.get_execution_history(executionArn=started["executionArn"])["events"]
    assert [e["type"] for e in history] == [
        "ExecutionStarted",
        "PassStateEntered",
        "PassStateExited",
        "ExecutionSucceeded",
    ]
    assert json.loads(history[0]["executionStartedEventDetails"]["input"]) == {"n": 1}
    assert history[2]["stateExitedEventDetails"]["name"] == "P"


def test_describe_state_machine_for_execution_gives_the_definition_it_started_on(sfn: Any) -> None:
    machine = create(sfn, wait_machine())
    execution = sfn.start_execution(stateMachineArn=machine, name=unique("versioned"))["executionArn"]
    sfn.update_state_machine(stateMachineArn=machine, definition=pass_machine())

    ran = sfn.describe_state_machine_for_execution(executionArn=execution)

    assert json.loads(ran["definition"]) == json.loads(wait_machine())
    assert ran["stateMachineArn"] == machine and ran["roleArn"] == role_arn()
    sfn.stop_execution(executionArn=execution)


def test_start_execution_repeated_while_running_returns_the_first_and_otherwise_is_refused(sfn: Any) -> None:
    machine = create(sfn, wait_machine())
    name = unique("idempotent")
    first = sfn.start_execution(stateMachineArn=machine, name=name, input='{"a": 1}')

    repeated = sfn.start_execution(stateMachineArn=machine, name=name, input='{"a": 1}')
    assert (repeated["executionArn"], repeated["startDate"]) == (first["executionArn"], first["startDate"])
    with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
        sfn.start_execution(stateMachineArn=machine, name=name, input='{"a": 2}')

    sfn.stop_execution(executionArn=first["executionArn"])
    with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
        sfn.start_execution(stateMachineArn=machine, name=name, input='{"a": 1}')


def test_stop_execution_aborts_it_with_the_error_and_cause_given(sfn: Any) -> None:
    machine = create(sfn, wait_machine())
    execution = sfn.start_execution(stateMachineArn=machine, name=unique("stopped"))["executionArn"]

    stopped = sfn.stop_execution(executionArn=execution, error="Operator", cause="stopped by the test")

    described = sfn.describe_execution(executionArn=execution)
    assert (described["status"], described["error"], described["cause"]) == (
        "ABORTED",
        "Operator",
        "stopped by the test",
    )
    assert described["stopDate"] == stopped["stopDate"]
    assert event_types(sfn, execution)[-1] == "ExecutionAborted"
    assert sfn.stop_execution(executionArn=execution)["stopDate"] == stopped["stopDate"]


def test_list_executions_pages_newest_first_and_filters_by_status(sfn: Any) -> None:
    machine = create(sfn, pass_machine())
    waiting = create(sfn, wait_machine())
    started = [
        sfn.start_execution(stateMachineArn=machine, name=unique(f"listed{i}"))["executionArn"]
        for i in range(7)
    ]
    for arn in started:
        finished(sfn, arn)
    running = sfn.start_execution(stateMachineArn=waiting, name=unique("running"))["executionArn"]

    pages = list(
        sfn.get_paginator("list_executions").paginate(
            stateMachineArn=machine, PaginationConfig={"PageSize": 3}
        )
    )

    listed = [execution["executionArn"] for page in pages for execution in page["executions"]]
    assert listed == list(reversed(started)), "newest first, each once"
    assert len(pages) == 3
    succeeded = sfn.list_executions(stateMachineArn=machine, statusFilter="SUCCEEDED")["executions"]
    assert len(succeeded) == 7
    assert sfn.list_executions(stateMachineArn=machine, statusFilter="RUNNING")["executions"] == []
    assert [e["executionArn"] for e in sfn.list_executions(stateMachineArn=waiting)["executions"]] == [
        running
    ]
    sfn.stop_execution(executionArn=running)


def test_get_execution_history_pages_in_either_order_and_can_leave_out_the_data(sfn: Any) -> None:
    machine = create(sfn, pass_machine({"out": 1}))
    execution = sfn.start_execution(stateMachineArn=machine, name=unique("paged"), input='{"in": 1}')[
        "executionArn"
    ]
    finished(sfn, execution)
    everything = sfn.get_execution_history(executionArn=execution)["events"]
    paginator = sfn.get_execution_history

    forward, token = [], None
    while True:
        page = paginator(executionArn=execution, maxResults=1, **({"nextToken": token} if token else {}))
        forward += page["events"]
        token = page.get("nextToken")
        if not token:
            break
    backward = [
        event
        for page in sfn.get_paginator("get_execution_history").paginate(
            executionArn=execution, reverseOrder=True, PaginationConfig={"PageSize": 3}
        )
        for event in page["events"]
    ]
    assert [e["id"] for e in forward] == [1, 2, 3, 4]
    assert [e["id"] for e in backward] == [4, 3, 2, 1]
    assert backward == list(reversed(everything))

    bare = sfn.get_execution_history(executionArn=execution, includeExecutionData=False)["events"]
    assert "input" not in bare[0]["executionStartedEventDetails"]
    assert "output" not in bare[-1].get("executionSucceededEventDetails", {})


def test_redrive_execution_runs_a_failed_execution_again_from_where_it_failed(sfn: Any) -> None:
    failing = json.dumps(
        {"StartAt": "Call", "States": {"Call": {"Type": "Task", "Resource": "no_such_function", "End": True}}}
    )
    machine = create(sfn, failing)
    execution = sfn.start_execution(stateMachineArn=machine, name=unique("redriven"))["executionArn"]
    assert finished(sfn, execution)["status"] == "FAILED"

    redriven = sfn.redrive_execution(executionArn=execution)

    described = finished(sfn, execution)
    assert described["redriveCount"] == 1
    assert "ExecutionRedriven" in event_types(sfn, execution)
    assert redriven["redriveDate"] >= described["startDate"]
    done = create(sfn, pass_machine())
    succeeded = sfn.start_execution(stateMachineArn=done, name=unique("done"))["executionArn"]
    finished(sfn, succeeded)
    with pytest.raises(sfn.exceptions.ExecutionNotRedrivable):
        sfn.redrive_execution(executionArn=succeeded)


def test_executions_of_a_deleted_machine_never_reappear_under_a_new_one_of_its_name(sfn: Any) -> None:
    name = unique("reborn")
    arn = sfn.create_state_machine(name=name, definition=pass_machine(), roleArn=role_arn())[
        "stateMachineArn"
    ]
    old = sfn.start_execution(stateMachineArn=arn, name=unique("old"))["executionArn"]
    finished(sfn, old)
    sfn.delete_state_machine(stateMachineArn=arn)
    with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
        sfn.start_execution(stateMachineArn=arn)

    sfn.create_state_machine(name=name, definition=pass_machine(), roleArn=role_arn())
    new = sfn.start_execution(stateMachineArn=arn, name=unique("new"))["executionArn"]

    assert [e["executionArn"] for e in sfn.list_executions(stateMachineArn=arn)["executions"]] == [new]
    assert sfn.describe_execution(executionArn=old)["status"] == "SUCCEEDED", "still described, as on AWS"


def test_well_formed_arns_of_nothing_are_does_not_exist_errors(sfn: Any) -> None:
    nothing = f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:{unique('nothing')}"
    with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
        sfn.describe_state_machine(stateMachineArn=nothing)
    with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
        sfn.start_execution(stateMachineArn=nothing)
    with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
        sfn.list_executions(stateMachineArn=nothing)
    execution = f"arn:aws:states:us-east-1:{ACCOUNT}:execution:{unique('nothing')}:{unique('run')}"
    for call in (
        sfn.describe_execution,
        sfn.get_execution_history,
        sfn.stop_execution,
        sfn.redrive_execution,
    ):
        with pytest.raises(sfn.exceptions.ExecutionDoesNotExist):
            call(executionArn=execution)
    with pytest.raises(sfn.exceptions.InvalidArn):
        sfn.describe_execution(executionArn="arn:aws:states:eu-west-1:123456789012:execution:m:e")


def test_list_executions_without_a_state_machine_is_a_clear_validation_error(sfn: Any) -> None:
    with pytest.raises(sfn.exceptions.ClientError) as refused:
        sfn.list_executions()
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "stateMachineArn" in refused.value.response["Error"]["Message"]


def test_a_forged_next_token_is_refused_as_invalid(sfn: Any) -> None:
    machine = create(sfn, pass_machine())
    with pytest.raises(sfn.exceptions.InvalidToken):
        sfn.list_executions(stateMachineArn=machine, nextToken="eyJmb3JnZWQiOjF9.AAAAAAAAAAAAAAAAAAAAAA")
    with pytest.raises(sfn.exceptions.InvalidToken):
        sfn.list_state_machines(nextToken="forged")


# -- callbacks -----------------------------------------------------------------------------------


def callback_machine() -> str:
    task = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {
            "FunctionName": "remember_task_token",
            "Payload": {"key.$": "$.key", "token.$": "$$.Task.Token"},
        },
        "End": True,
    }
    return json.dumps({"StartAt": "Approval", "States": {"Approval": task}})


def handed_token(api_stack: ApiStack, key: str) -> str:
    connection = redis.Redis.from_url(api_stack.env["REDIS_URL"])
    token: list[bytes] = []

    def handed() -> bool:
        value = connection.get(key)
        if value is not None:
            token.append(value)
        return value is not None

    try:
        eventually(handed, f"the task token under {key}")
    finally:
        connection.close()
    return token[0].decode()


def test_callback_tasks_are_answered_with_send_task_success_failure_and_heartbeat(
    sfn: Any, api_stack: ApiStack
) -> None:
    machine = create(sfn, callback_machine())
    approved_key, rejected_key = (
        unique(f"{api_stack.prefix}:approved"),
        unique(f"{api_stack.prefix}:rejected"),
    )
    approved = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"key": approved_key}))[
        "executionArn"
    ]
    rejected = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"key": rejected_key}))[
        "executionArn"
    ]
    token = handed_token(api_stack, approved_key)

    sfn.send_task_heartbeat(taskToken=token)
    sfn.send_task_success(taskToken=token, output='{"approved": true}')
    sfn.send_task_failure(taskToken=handed_token(api_stack, rejected_key), error="Rejected", cause="no")

    assert json.loads(finished(sfn, approved)["output"]) == {"approved": True}
    failed = finished(sfn, rejected)
    assert (failed["status"], failed["error"], failed["cause"]) == ("FAILED", "Rejected", "no")
    with pytest.raises(sfn.exceptions.TaskTimedOut):
        sfn.send_task_success(taskToken=token, output="{}")
    with pytest.raises(sfn.exceptions.InvalidToken):  # a plain, guessable token never crosses the network
        sfn.send_task_heartbeat(taskToken=f"{unique('nobody')}:1")
    with pytest.raises(sfn.exceptions.InvalidToken):
        sfn.send_task_failure(taskToken="not a token")
    with pytest.raises(sfn.exceptions.InvalidOutput):
        sfn.send_task_success(taskToken=token, output="{not json")


def test_a_task_starts_a_nested_execution_and_waits_for_its_output(sfn: Any) -> None:
    child = create(sfn, pass_machine({"from": "the child"}), "child")
    start = {
        "Type": "Task",
        "Resource": "arn:aws:states:::states:startExecution.sync:2",
        "Parameters": {"StateMachineArn": child, "Input": {"n": 1}},
        "OutputPath": "$.Output",
        "End": True,
    }
    parent = create(sfn, json.dumps({"StartAt": "Run", "States": {"Run": start}}), "parent")

    started = sfn.start_execution(stateMachineArn=parent, name=unique("run"), input="{}")
    described = finished(sfn, started["executionArn"])

    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == {"from": "the child"}
    [nested] = sfn.list_executions(stateMachineArn=child)["executions"]
    assert nested["status"] == "SUCCEEDED"
    history = sfn.get_execution_history(executionArn=started["executionArn"])["events"]
    [submitted] = [e["taskSubmittedEventDetails"] for e in history if e["type"] == "TaskSubmitted"]
    assert (submitted["resourceType"], submitted["resource"]) == ("states", "startExecution.sync:2")
    assert json.loads(submitted["output"])["ExecutionArn"].endswith(":" + nested["name"])
