"""State machine versions through boto3: published, listed newest first, described, deleted."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api_fixtures import ACCOUNT, REGION, ApiStack, pass_machine, role_arn, serve_only, unique
from tests.test_api_cli import aws

__all__ = ["serve_only"]


@pytest.fixture(scope="module")
def sfn(serve_only: ApiStack) -> Any:
    return serve_only.client()


def create(sfn: Any, result: Any = "one", **extra: Any) -> dict[str, Any]:
    return dict(
        sfn.create_state_machine(
            name=unique("versioned"), definition=pass_machine(result), roleArn=role_arn(), **extra
        )
    )


def version_arns(sfn: Any, arn: str) -> list[str]:
    return [
        v["stateMachineVersionArn"]
        for v in sfn.list_state_machine_versions(stateMachineArn=arn)["stateMachineVersions"]
    ]


def test_create_and_update_with_publish_make_numbered_immutable_versions(sfn: Any) -> None:
    created = create(sfn, "one", publish=True, versionDescription="first")
    arn = created["stateMachineArn"]
    assert created["stateMachineVersionArn"] == f"{arn}:1"

    updated = sfn.update_state_machine(
        stateMachineArn=arn, definition=pass_machine("two"), publish=True, versionDescription="second"
    )
    assert updated["stateMachineVersionArn"] == f"{arn}:2"
    sfn.update_state_machine(stateMachineArn=arn, definition=pass_machine("three"))

    first = sfn.describe_state_machine(stateMachineArn=f"{arn}:1")
    assert first["stateMachineArn"] == f"{arn}:1"
    assert json.loads(first["definition"])["States"]["P"]["Result"] == "one"
    assert first["description"] == "first"
    second = sfn.describe_state_machine(stateMachineArn=f"{arn}:2")
    assert json.loads(second["definition"])["States"]["P"]["Result"] == "two"
    assert second["revisionId"] == updated["revisionId"]
    current = sfn.describe_state_machine(stateMachineArn=arn)
    assert json.loads(current["definition"])["States"]["P"]["Result"] == "three"
    assert version_arns(sfn, arn) == [f"{arn}:2", f"{arn}:1"]


def test_publish_state_machine_version_is_idempotent_and_checks_the_revision(sfn: Any) -> None:
    arn = create(sfn)["stateMachineArn"]
    revision = sfn.describe_state_machine(stateMachineArn=arn)["revisionId"]
    published = sfn.publish_state_machine_version(stateMachineArn=arn, revisionId=revision, description="d")
    assert published["stateMachineVersionArn"] == f"{arn}:1"
    again = sfn.publish_state_machine_version(stateMachineArn=arn, description="another description")
    assert again["stateMachineVersionArn"] == f"{arn}:1"
    assert sfn.describe_state_machine(stateMachineArn=f"{arn}:1")["description"] == "d"

    sfn.update_state_machine(stateMachineArn=arn, definition=pass_machine("changed"))
    with pytest.raises(sfn.exceptions.ConflictException):
        sfn.publish_state_machine_version(stateMachineArn=arn, revisionId=revision)
    with pytest.raises(sfn.exceptions.ConflictException):
        sfn.publish_state_machine_version(stateMachineArn=arn, revisionId="INITIAL")
    assert sfn.publish_state_machine_version(stateMachineArn=arn)["stateMachineVersionArn"] == f"{arn}:2"


def test_versions_are_listed_newest_first_across_pages(sfn: Any) -> None:
    arn = create(sfn, 0)["stateMachineArn"]
    for n in range(1, 5):
        sfn.update_state_machine(stateMachineArn=arn, definition=pass_machine(n), publish=True)
    seen, token = [], None
    while True:
        page = sfn.list_state_machine_versions(
            stateMachineArn=arn, maxResults=3, **({"nextToken": token} if token else {})
        )
        assert len(page["stateMachineVersions"]) <= 3
        seen += [v["stateMachineVersionArn"] for v in page["stateMachineVersions"]]
        token = page.get("nextToken")
        if token is None:
            break
    assert seen == [f"{arn}:{n}" for n in (4, 3, 2, 1)]
    with pytest.raises(sfn.exceptions.InvalidToken):
        sfn.list_state_machine_versions(stateMachineArn=arn, nextToken="forged.token")


def test_a_deleted_version_is_gone_and_its_number_is_not_reused(sfn: Any) -> None:
    arn = create(sfn, "a", publish=True)["stateMachineArn"]
    sfn.update_state_machine(stateMachineArn=arn, definition=pass_machine("b"), publish=True)
    sfn.delete_state_machine_version(stateMachineVersionArn=f"{arn}:2")
    sfn.delete_state_machine_version(stateMachineVersionArn=f"{arn}:2")  # as AWS: no error again
    assert version_arns(sfn, arn) == [f"{arn}:1"]
    with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
        sfn.describe_state_machine(stateMachineArn=f"{arn}:2")
    sfn.update_state_machine(stateMachineArn=arn, definition=pass_machine("c"), publish=True)
    assert version_arns(sfn, arn) == [f"{arn}:3", f"{arn}:1"]


def test_versions_go_with_their_machine_and_do_not_come_back_with_its_name(sfn: Any) -> None:
    name = unique("reborn")
    arn = sfn.create_state_machine(name=name, definition=pass_machine(1), roleArn=role_arn(), publish=True)[
        "stateMachineArn"
    ]
    sfn.create_state_machine_alias(
        name="live", routingConfiguration=[{"stateMachineVersionArn": f"{arn}:1", "weight": 100}]
    )
    sfn.delete_state_machine(stateMachineArn=arn)
    sfn.create_state_machine(name=name, definition=pass_machine(2), roleArn=role_arn())
    assert version_arns(sfn, arn) == []
    assert sfn.list_state_machine_aliases(stateMachineArn=arn)["stateMachineAliases"] == []
    with pytest.raises(sfn.exceptions.ResourceNotFound):
        sfn.describe_state_machine_alias(stateMachineAliasArn=f"{arn}:live")
    with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
        sfn.describe_state_machine(stateMachineArn=f"{arn}:1")
    assert sfn.publish_state_machine_version(stateMachineArn=arn)["stateMachineVersionArn"] == f"{arn}:1"


def test_initial_names_the_revision_of_a_machine_never_updated(sfn: Any) -> None:
    arn = create(sfn)["stateMachineArn"]
    published = sfn.publish_state_machine_version(stateMachineArn=arn, revisionId="INITIAL")
    assert published["stateMachineVersionArn"] == f"{arn}:1"


def test_bad_and_unknown_version_arns_are_refused_with_aws_errors(sfn: Any) -> None:
    missing = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{unique('none')}"
    with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
        sfn.publish_state_machine_version(stateMachineArn=missing)
    with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
        sfn.list_state_machine_versions(stateMachineArn=missing)
    with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
        sfn.describe_state_machine(stateMachineArn=f"{missing}:1")
    arn = create(sfn)["stateMachineArn"]
    with pytest.raises(sfn.exceptions.InvalidArn):
        sfn.describe_state_machine(stateMachineArn=f"{arn}:not*valid")
    with pytest.raises(sfn.exceptions.InvalidArn):
        sfn.delete_state_machine_version(stateMachineVersionArn=arn)
    with pytest.raises(sfn.exceptions.InvalidArn):
        sfn.list_state_machine_versions(stateMachineArn=f"arn:aws:states:eu-west-1:{ACCOUNT}:stateMachine:x")
    with pytest.raises(sfn.exceptions.ValidationException):
        sfn.create_state_machine(
            name=unique("nopublish"), definition=pass_machine(), roleArn=role_arn(), versionDescription="x"
        )


def test_the_aws_cli_lists_state_machine_versions(serve_only: ApiStack, sfn: Any) -> None:
    arn = create(sfn, "x", publish=True)["stateMachineArn"]
    sfn.update_state_machine(stateMachineArn=arn, definition=pass_machine("y"), publish=True)
    listed = aws(serve_only, "list-state-machine-versions", "--state-machine-arn", arn)
    assert [v["stateMachineVersionArn"] for v in listed["stateMachineVersions"]] == [f"{arn}:2", f"{arn}:1"]
