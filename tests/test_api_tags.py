"""Tags on state machines through boto3: kept, listed, removed, limited, and gone with the machine."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api_fixtures import ACCOUNT, REGION, ApiStack, pass_machine, role_arn, serve_only, unique

__all__ = ["serve_only"]


@pytest.fixture(scope="module")
def sfn(serve_only: ApiStack) -> Any:
    return serve_only.client()


def machine(sfn: Any, **extra: Any) -> str:
    return str(
        sfn.create_state_machine(
            name=unique("tagged"), definition=pass_machine(), roleArn=role_arn(), **extra
        )["stateMachineArn"]
    )


def tags_of(sfn: Any, arn: str) -> dict[str, str]:
    return {tag["key"]: tag["value"] for tag in sfn.list_tags_for_resource(resourceArn=arn)["tags"]}


def test_tags_are_added_replaced_listed_and_removed(sfn: Any) -> None:
    arn = machine(sfn)
    assert tags_of(sfn, arn) == {}

    sfn.tag_resource(
        resourceArn=arn, tags=[{"key": "team", "value": "dragons"}, {"key": "env", "value": "dev"}]
    )
    sfn.tag_resource(resourceArn=arn, tags=[{"key": "env", "value": "prod"}])
    assert tags_of(sfn, arn) == {"team": "dragons", "env": "prod"}

    sfn.untag_resource(resourceArn=arn, tagKeys=["env", "not-there"])
    assert tags_of(sfn, arn) == {"team": "dragons"}


def test_tags_given_to_create_state_machine_are_kept(sfn: Any) -> None:
    arn = machine(sfn, tags=[{"key": "owner", "value": "smaug"}])
    assert tags_of(sfn, arn) == {"owner": "smaug"}


def test_more_than_fifty_tags_are_refused_with_too_many_tags(sfn: Any) -> None:
    arn = machine(sfn)
    sfn.tag_resource(resourceArn=arn, tags=[{"key": f"k{i}", "value": "v"} for i in range(50)])
    with pytest.raises(sfn.exceptions.TooManyTags):
        sfn.tag_resource(resourceArn=arn, tags=[{"key": "one-more", "value": "v"}])
    assert len(tags_of(sfn, arn)) == 50
    with pytest.raises(sfn.exceptions.TooManyTags):
        machine(sfn, tags=[{"key": f"k{i}", "value": "v"} for i in range(51)])


def test_unknown_and_malformed_resources_are_refused(sfn: Any) -> None:
    missing = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{unique('none')}"
    with pytest.raises(sfn.exceptions.ResourceNotFound):
        sfn.list_tags_for_resource(resourceArn=missing)
    with pytest.raises(sfn.exceptions.ResourceNotFound):
        sfn.tag_resource(resourceArn=missing, tags=[{"key": "a", "value": "b"}])
    with pytest.raises(sfn.exceptions.ResourceNotFound):
        sfn.untag_resource(resourceArn=missing, tagKeys=["a"])
    with pytest.raises(sfn.exceptions.InvalidArn):
        sfn.list_tags_for_resource(resourceArn="arn:aws:states:eu-west-1:000000000000:stateMachine:x")


def test_tags_go_with_the_deleted_machine_and_do_not_come_back_with_its_name(sfn: Any) -> None:
    name = unique("reborn")
    arn = sfn.create_state_machine(name=name, definition=pass_machine(), roleArn=role_arn())[
        "stateMachineArn"
    ]
    sfn.tag_resource(resourceArn=arn, tags=[{"key": "old", "value": "yes"}])
    sfn.delete_state_machine(stateMachineArn=arn)
    with pytest.raises(sfn.exceptions.ResourceNotFound):
        sfn.list_tags_for_resource(resourceArn=arn)

    again = sfn.create_state_machine(name=name, definition=pass_machine(), roleArn=role_arn())[
        "stateMachineArn"
    ]
    assert again == arn
    assert tags_of(sfn, arn) == {}
