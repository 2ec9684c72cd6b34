"""Bad requests get AWS's error code, a message that says what and where, HTTP 400, and write nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api_fixtures import (
    ACCOUNT,
    Answer,
    ApiStack,
    pass_machine,
    role_arn,
    serve_only,
    signed_post,
    unique,
)

__all__ = ["serve_only"]  # fixtures, used by name

MACHINES = f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:"


def post(stack: ApiStack, action: str, body: Any, **options: Any) -> Answer:
    answer = signed_post(stack.url, action, body, **options)
    assert answer.status == 400, answer
    assert answer.headers["x-amzn-requestid"]
    return answer


def machine_names(stack: ApiStack) -> set[str]:
    return {m["name"] for m in stack.client().list_state_machines()["stateMachines"]}


def new_machine(stack: ApiStack) -> str:
    name = unique("target")
    stack.client().create_state_machine(name=name, definition=pass_machine(), roleArn=role_arn())
    return MACHINES + name


def test_a_body_that_is_not_json_is_a_serialization_error(serve_only: ApiStack) -> None:
    for body in ("{not json", "", "[1, 2", '{"maxResults": NaN}'):
        answer = post(serve_only, "ListStateMachines", body)
        assert answer.code == "SerializationException", body
        assert "not JSON" in answer.body["message"]


def test_a_body_that_is_json_but_not_an_object_is_a_serialization_error(serve_only: ApiStack) -> None:
    assert post(serve_only, "ListStateMachines", "[]").code == "SerializationException"


def test_an_unknown_action_or_service_is_refused_as_an_unknown_operation(serve_only: ApiStack) -> None:
    answer = post(serve_only, "LaunchRockets", {})
    assert answer.code == "UnknownOperationException" and "LaunchRockets" in answer.body["message"]


def test_a_missing_required_member_is_named_and_nothing_is_created(serve_only: ApiStack) -> None:
    name = unique("half")
    answer = post(serve_only, "CreateStateMachine", {"name": name, "definition": pass_machine()})
    assert answer.code == "ValidationException"
    assert "'roleArn'" in answer.body["message"] and "must not be null" in answer.body["message"]
    assert name not in machine_names(serve_only)


@pytest.mark.parametrize(
    ("action", "body", "member"),
    [
        ("ListStateMachines", {"maxResults": "ten"}, "maxResults"),
        ("ListStateMachines", {"maxResults": True}, "maxResults"),
        ("CreateStateMachine", {"name": 7, "definition": "{}", "roleArn": "r"}, "name"),
        ("GetExecutionHistory", {"executionArn": "a", "reverseOrder": "yes"}, "reverseOrder"),
        ("StartExecution", {"stateMachineArn": {"arn": 1}}, "stateMachineArn"),
    ],
)
def test_a_member_of_the_wrong_type_is_a_serialization_error_naming_it(
    serve_only: ApiStack, action: str, body: dict[str, Any], member: str
) -> None:
    answer = post(serve_only, action, body)
    assert answer.code == "SerializationException"
    assert f"'{member}'" in answer.body["message"]


def test_max_results_out_of_range_is_a_validation_error(serve_only: ApiStack) -> None:
    answer = post(serve_only, "ListStateMachines", {"maxResults": 1001})
    assert answer.code == "ValidationException"
    assert "less than or equal to 1000" in answer.body["message"]


def test_an_input_over_256_kib_is_refused_and_starts_nothing(serve_only: ApiStack) -> None:
    machine = new_machine(serve_only)
    name = unique("huge")
    oversized = json.dumps({"blob": "x" * (256 * 1024)})

    answer = post(
        serve_only, "StartExecution", {"stateMachineArn": machine, "name": name, "input": oversized}
    )

    assert answer.code == "ValidationException" and "'input'" in answer.body["message"]
    assert "262144" in answer.body["message"]
    assert serve_only.client().list_executions(stateMachineArn=machine)["executions"] == []


def test_an_input_that_is_not_json_is_an_invalid_execution_input(serve_only: ApiStack) -> None:
    machine = new_machine(serve_only)
    # What Python's json reads but JSON has not: NaN, the infinities, a number beyond a float.
    for text, named in [
        ("{oops", "Expecting"),
        ('{"weight": NaN}', "NaN is not a JSON value"),
        ("[Infinity]", "Infinity is not a JSON value"),
        ('{"weight": 1e400}', "1e400 is too large"),
    ]:
        answer = post(serve_only, "StartExecution", {"stateMachineArn": machine, "input": text})
        assert answer.code == "InvalidExecutionInput", text
        assert named in answer.body["message"], answer.body
    assert serve_only.client().list_executions(stateMachineArn=machine)["executions"] == []


def test_a_definition_over_1_mib_is_refused_and_creates_nothing(serve_only: ApiStack) -> None:
    name = unique("vast")
    definition = json.dumps(
        {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": "y" * (1024 * 1024), "End": True}}}
    )
    answer = post(
        serve_only, "CreateStateMachine", {"name": name, "definition": definition, "roleArn": role_arn()}
    )
    assert answer.code == "ValidationException" and "'definition'" in answer.body["message"]
    assert name not in machine_names(serve_only)


def test_a_body_over_the_size_limit_is_refused(serve_only: ApiStack) -> None:
    answer = post(serve_only, "ListStateMachines", b"{" + b" " * (9 * 1024 * 1024) + b"}")
    assert answer.code == "ValidationException" and "MiB" in answer.body["message"]


@pytest.mark.parametrize(
    "name", ["has space", "colon:name", "slash/name", "brace{x}", "q?", "n" * 81, "tab\tname"]
)
def test_a_state_machine_name_aws_forbids_is_refused_and_creates_nothing(
    serve_only: ApiStack, name: str
) -> None:
    answer = post(
        serve_only, "CreateStateMachine", {"name": name, "definition": pass_machine(), "roleArn": role_arn()}
    )
    assert answer.code in {"InvalidName", "ValidationException"}
    assert name not in machine_names(serve_only)


def test_an_execution_name_aws_or_redstep_forbids_is_an_invalid_name(serve_only: ApiStack) -> None:
    machine = new_machine(serve_only)
    for name in ("white space", "a#b", "dotted.name"):
        answer = post(serve_only, "StartExecution", {"stateMachineArn": machine, "name": name})
        assert answer.code == "InvalidName", name
    assert "letters, digits, hyphens or underscores" in answer.body["message"]
    assert serve_only.client().list_executions(stateMachineArn=machine)["executions"] == []


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:states:eu-west-1:000000000000:stateMachine:m",
        "arn:aws:states:us-east-1:123456789012:stateMachine:m",
        "arn:aws:states:us-east-1:000000000000:activity:m",
        "arn:aws:states:us-east-1:000000000000:stateMachine:m:v1",
        "not-an-arn",
    ],
)
def test_an_arn_of_another_region_account_or_kind_is_an_invalid_arn(serve_only: ApiStack, arn: str) -> None:
    answer = post(serve_only, "DescribeStateMachine", {"stateMachineArn": arn})
    assert answer.code == "InvalidArn"
    assert arn in answer.body["message"]


def test_an_unknown_type_or_a_bad_role_arn_is_refused_and_creates_nothing(serve_only: ApiStack) -> None:
    name = unique("express")
    unknown = {"name": name, "definition": pass_machine(), "roleArn": role_arn(), "type": "FAST"}
    assert post(serve_only, "CreateStateMachine", unknown).code == "ValidationException"
    bad_role = {"name": name, "definition": pass_machine(), "roleArn": "arn:aws:iam::1:user/x"}
    assert post(serve_only, "CreateStateMachine", bad_role).code == "InvalidArn"
    assert name not in machine_names(serve_only)
