"""Aliases through boto3, and executions started on a version or through an alias on a live stack."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api_fixtures import (
    ACCOUNT,
    REGION,
    api_stack,
    finished,
    pass_machine,
    role_arn,
    sfn,
    unique,
)

__all__ = ["api_stack", "sfn"]


def versioned(sfn: Any, results: list[Any]) -> str:
    """A machine with one published version per result, in order (version n returns results[n-1])."""
    arn = sfn.create_state_machine(
        name=unique("aliased"), definition=pass_machine(results[0]), roleArn=role_arn(), publish=True
    )["stateMachineArn"]
    for result in results[1:]:
        sfn.update_state_machine(stateMachineArn=arn, definition=pass_machine(result), publish=True)
    return str(arn)


def routing(arn: str, **weights: int) -> list[dict[str, Any]]:
    return [{"stateMachineVersionArn": f"{arn}:{n[1:]}", "weight": w} for n, w in weights.items()]


def test_an_alias_is_created_described_updated_listed_and_deleted(sfn: Any) -> None:
    arn = versioned(sfn, ["one", "two"])
    alias = sfn.create_state_machine_alias(
        name="PROD", routingConfiguration=routing(arn, v1=100), description="p"
    )
    assert alias["stateMachineAliasArn"] == f"{arn}:PROD"
    again = sfn.create_state_machine_alias(
        name="PROD", routingConfiguration=routing(arn, v1=100), description="p"
    )
    assert again["creationDate"] == alias["creationDate"]
    with pytest.raises(sfn.exceptions.ConflictException):
        sfn.create_state_machine_alias(name="PROD", routingConfiguration=routing(arn, v2=100))

    described = sfn.describe_state_machine_alias(stateMachineAliasArn=f"{arn}:PROD")
    assert (described["name"], described["description"]) == ("PROD", "p")
    assert described["routingConfiguration"] == routing(arn, v1=100)

    sfn.update_state_machine_alias(
        stateMachineAliasArn=f"{arn}:PROD", routingConfiguration=routing(arn, v1=90, v2=10)
    )
    assert sfn.describe_state_machine_alias(stateMachineAliasArn=f"{arn}:PROD")[
        "routingConfiguration"
    ] == routing(arn, v1=90, v2=10)
    sfn.create_state_machine_alias(name="beta", routingConfiguration=routing(arn, v2=100))
    listed = sfn.list_state_machine_aliases(stateMachineArn=arn)["stateMachineAliases"]
    assert [a["stateMachineAliasArn"] for a in listed] == [f"{arn}:PROD", f"{arn}:beta"]
    first_page = sfn.list_state_machine_aliases(stateMachineArn=arn, maxResults=1)
    assert len(first_page["stateMachineAliases"]) == 1
    second = sfn.list_state_machine_aliases(
        stateMachineArn=arn, maxResults=1, nextToken=first_page["nextToken"]
    )
    assert [a["stateMachineAliasArn"] for a in second["stateMachineAliases"]] == [f"{arn}:beta"]
    of_v1 = sfn.list_state_machine_aliases(stateMachineArn=f"{arn}:1")["stateMachineAliases"]
    assert [a["stateMachineAliasArn"] for a in of_v1] == [f"{arn}:PROD"]

    sfn.delete_state_machine_alias(stateMachineAliasArn=f"{arn}:beta")
    with pytest.raises(sfn.exceptions.ResourceNotFound):
        sfn.describe_state_machine_alias(stateMachineAliasArn=f"{arn}:beta")
    with pytest.raises(sfn.exceptions.ResourceNotFound):
        sfn.delete_state_machine_alias(stateMachineAliasArn=f"{arn}:beta")


def test_a_version_an_alias_routes_to_cannot_be_deleted(sfn: Any) -> None:
    arn = versioned(sfn, ["one", "two"])
    sfn.create_state_machine_alias(name="live", routingConfiguration=routing(arn, v1=50, v2=50))
    with pytest.raises(sfn.exceptions.ConflictException):
        sfn.delete_state_machine_version(stateMachineVersionArn=f"{arn}:2")
    sfn.update_state_machine_alias(
        stateMachineAliasArn=f"{arn}:live", routingConfiguration=routing(arn, v1=100)
    )
    sfn.delete_state_machine_version(stateMachineVersionArn=f"{arn}:2")
    with pytest.raises(sfn.exceptions.ResourceNotFound):
        sfn.update_state_machine_alias(
            stateMachineAliasArn=f"{arn}:live", routingConfiguration=routing(arn, v2=100)
        )


def test_bad_routing_configurations_are_refused(sfn: Any) -> None:
    arn = versioned(sfn, ["one", "two"])
    other = versioned(sfn, ["x"])
    with pytest.raises(sfn.exceptions.ValidationException):
        sfn.create_state_machine_alias(name="a", routingConfiguration=routing(arn, v1=50, v2=40))
    with pytest.raises(sfn.exceptions.ValidationException):
        sfn.create_state_machine_alias(
            name="a",
            routingConfiguration=[
                *routing(arn, v1=50),
                {"stateMachineVersionArn": f"{other}:1", "weight": 50},
            ],
        )
    with pytest.raises(sfn.exceptions.ValidationException):
        sfn.create_state_machine_alias(name="a", routingConfiguration=routing(arn, v1=30, v2=30, v3=40))
    with pytest.raises(sfn.exceptions.ResourceNotFound):
        sfn.create_state_machine_alias(name="a", routingConfiguration=routing(arn, v9=100))
    with pytest.raises(sfn.exceptions.InvalidArn):
        sfn.create_state_machine_alias(
            name="a", routingConfiguration=[{"stateMachineVersionArn": arn, "weight": 100}]
        )
    with pytest.raises(sfn.exceptions.ValidationException):
        sfn.update_state_machine_alias(stateMachineAliasArn=f"{arn}:a")
    missing = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{unique('none')}:prod"
    with pytest.raises(sfn.exceptions.ResourceNotFound):
        sfn.describe_state_machine_alias(stateMachineAliasArn=missing)


def test_an_alias_runs_its_version_after_the_machine_was_updated(sfn: Any) -> None:
    arn = versioned(sfn, ["version one", "version two"])
    sfn.update_state_machine(stateMachineArn=arn, definition=pass_machine("unpublished"))
    sfn.create_state_machine_alias(name="stable", routingConfiguration=routing(arn, v1=100))

    through_alias = sfn.start_execution(stateMachineArn=f"{arn}:stable")["executionArn"]
    on_version = sfn.start_execution(stateMachineArn=f"{arn}:2")["executionArn"]
    on_machine = sfn.start_execution(stateMachineArn=arn)["executionArn"]

    described = finished(sfn, through_alias)
    assert (described["status"], json.loads(described["output"])) == ("SUCCEEDED", "version one")
    assert described["stateMachineArn"] == arn
    assert described["stateMachineVersionArn"] == f"{arn}:1"
    assert described["stateMachineAliasArn"] == f"{arn}:stable"
    described = finished(sfn, on_version)
    assert json.loads(described["output"]) == "version two"
    assert described["stateMachineVersionArn"] == f"{arn}:2" and "stateMachineAliasArn" not in described
    described = finished(sfn, on_machine)
    assert json.loads(described["output"]) == "unpublished" and "stateMachineVersionArn" not in described
    ran = sfn.describe_state_machine_for_execution(executionArn=through_alias)
    assert json.loads(ran["definition"])["States"]["P"]["Result"] == "version one"

    def listed(through: str) -> list[str]:
        return [e["executionArn"] for e in sfn.list_executions(stateMachineArn=through)["executions"]]

    assert listed(f"{arn}:stable") == [through_alias]
    assert listed(f"{arn}:2") == [on_version]
    assert set(listed(arn)) == {through_alias, on_version, on_machine}


def test_an_alias_routes_by_weight_to_both_versions(sfn: Any) -> None:
    arn = versioned(sfn, ["a", "b"])
    sfn.create_state_machine_alias(name="canary", routingConfiguration=routing(arn, v1=50, v2=50))
    started = [sfn.start_execution(stateMachineArn=f"{arn}:canary")["executionArn"] for _ in range(40)]
    outputs = {json.loads(finished(sfn, execution)["output"]) for execution in started}
    # 40 draws at 50/50 all landing on one version: a chance of 2 in 10^12.
    assert outputs == {"a", "b"}


def test_starting_through_an_unknown_version_or_alias_is_refused(sfn: Any) -> None:
    arn = versioned(sfn, ["a"])
    with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
        sfn.start_execution(stateMachineArn=f"{arn}:7")
    with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
        sfn.start_execution(stateMachineArn=f"{arn}:nope")
