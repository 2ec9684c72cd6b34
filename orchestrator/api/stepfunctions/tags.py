"""TagResource, UntagResource and ListTagsForResource on state machines, and tags given to
CreateStateMachine.

Tags live in ``{p}:sfn-tags`` by ARN, with the creation date of the machine they belong to: a
machine deleted and created again under the same name starts without the old one's tags,
even when they could not be removed with it, and DeleteStateMachine removes them too.
"""

from __future__ import annotations

import json
import time
from typing import Any

from orchestrator.api.errors import ApiError
from orchestrator.api.stepfunctions import machines
from orchestrator.api.stepfunctions.context import StepFunctions

MAX_TAGS = 50
"""AWS's limit of tags on one resource."""


def tag_resource(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    arn = request["resourceArn"]
    created = _resource_created(sfn, arn)
    tags = {**_stored(sfn, arn, created), **_given(request["tags"])}
    _check_count(arn, tags)
    _store(sfn, arn, created, tags)
    return {}


def untag_resource(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    arn = request["resourceArn"]
    created = _resource_created(sfn, arn)
    tags = _stored(sfn, arn, created)
    for key in request["tagKeys"]:
        tags.pop(key, None)
    _store(sfn, arn, created, tags)
    return {}


def list_tags_for_resource(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    arn = request["resourceArn"]
    tags = _stored(sfn, arn, _resource_created(sfn, arn))
    return {"tags": [{"key": key, "value": value} for key, value in tags.items()]}


def create_state_machine(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    """CreateStateMachine, keeping the ``tags`` it is given on the machine it makes."""
    given = _given(request.get("tags") or [])
    _check_count(request["name"], given)
    created = machines.create_state_machine(sfn, {k: v for k, v in request.items() if k != "tags"})
    if given:
        arn = created["stateMachineArn"]
        _store(sfn, arn, _resource_created(sfn, arn), given)
    return created


def delete_state_machine(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    """DeleteStateMachine, removing the machine's tags with it."""
    answer = machines.delete_state_machine(sfn, request)
    sfn.client.redis.hdel(sfn.client.keys.sfn_tags, request["stateMachineArn"])
    return answer


def _resource_created(sfn: StepFunctions, arn: str) -> float:
    """The creation date of the state machine ``arn`` names.

    Raises:
        ApiError: InvalidArn for what is no state machine ARN here, ResourceNotFound for a
            well-formed ARN of none.
    """
    entry = sfn.catalog.get(sfn.arns.state_machine_name(arn), time.time())
    if entry is None:
        raise ApiError("ResourceNotFound", f"Resource not found: '{arn}'")
    return float(entry.creation_date)


def _stored(sfn: StepFunctions, arn: str, created: float) -> dict[str, str]:
    raw = sfn.client.redis.hget(sfn.client.keys.sfn_tags, arn)
    if raw is None:
        return {}
    record = json.loads(raw)
    return dict(record["tags"]) if record.get("created") == created else {}


def _store(sfn: StepFunctions, arn: str, created: float, tags: dict[str, str]) -> None:
    sfn.client.redis.hset(sfn.client.keys.sfn_tags, arn, json.dumps({"created": created, "tags": tags}))


def _given(tags: list[dict[str, Any]]) -> dict[str, str]:
    given: dict[str, str] = {}
    for index, tag in enumerate(tags):
        if tag.get("key") is None:
            raise ApiError(
                "ValidationException",
                f"1 validation error detected: Value null at 'tags.{index + 1}.member.key' failed to satisfy"
                " constraint: Member must not be null",
            )
        given[tag["key"]] = tag.get("value", "")
    return given


def _check_count(arn: str, tags: dict[str, str]) -> None:
    if len(tags) > MAX_TAGS:
        raise ApiError(
            "TooManyTags",
            f"Too many tags: '{arn}' would have {len(tags)} tags; a resource takes at most {MAX_TAGS}",
        )
