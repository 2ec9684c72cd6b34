"""Activity actions: Create, Describe, List, Delete, and GetActivityTask's long poll (runtime.activities)."""

from __future__ import annotations

import functools
import json
import time
from typing import Any

from orchestrator.api.arns import name_problem
from orchestrator.api.config import ApiSettings
from orchestrator.api.errors import ApiError, validation_error
from orchestrator.api.pagination import listing_key
from orchestrator.api.stepfunctions.context import StepFunctions, page_size
from orchestrator.asl.resources import ACTIVITY_ARN
from orchestrator.runtime.activities import Activities, ActivityDeleted, TaskPoller
from orchestrator.settings import Settings


def create_activity(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    name = request["name"]
    if problem := name_problem(name):
        raise ApiError("InvalidName", f"Invalid Name: '{name}': the name {problem}")
    if request.get("tags"):
        raise validation_error("tags are not supported by redstep yet: create the activity without tags")
    encryption = request.get("encryptionConfiguration") or {}
    if encryption.get("type", "AWS_OWNED_KEY") != "AWS_OWNED_KEY":
        raise ApiError(
            "InvalidEncryptionConfiguration",
            "redstep keeps activity data in its Redis: only the AWS_OWNED_KEY encryption type is accepted",
        )
    created = _activities(sfn).create(name, time.time())
    return {"activityArn": sfn.arns.activity(name), "creationDate": created}


def describe_activity(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    arn = request["activityArn"]
    name = sfn.arns.activity_name(arn)
    created = _activities(sfn).creation_date(name)
    if created is None:
        raise ApiError("ActivityDoesNotExist", f"Activity Does Not Exist: '{arn}'")
    return {"activityArn": sfn.arns.activity(name), "name": name, "creationDate": created}


def list_activities(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    limit, listing = page_size(request), listing_key("ListActivities")
    after = sfn.tokens.read(request["nextToken"], listing) if "nextToken" in request else None
    activities = _activities(sfn)
    names = [name for name in activities.names() if after is None or name > after]
    items = []
    for name in names[:limit]:
        created = activities.creation_date(name)
        if created is not None:  # deleted between the two reads
            items.append({"activityArn": sfn.arns.activity(name), "name": name, "creationDate": created})
    answer: dict[str, Any] = {"activities": items}
    if len(names) > limit:
        answer["nextToken"] = sfn.tokens.issue(listing, names[limit - 1])
    return answer


def delete_activity(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    _activities(sfn).delete(sfn.arns.activity_name(request["activityArn"]))
    return {}


async def get_activity_task(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    arn = request["activityArn"]
    name = sfn.arns.activity_name(arn)
    poller = _poller(sfn.client.settings)
    if await poller.connection().hget(sfn.client.keys.activities, name) is None:
        raise ApiError("ActivityDoesNotExist", f"Activity Does Not Exist: '{arn}'")
    try:
        task = await poller.take(name, _poll_seconds(), request.get("workerName"))
    except ActivityDeleted:
        raise ApiError(
            "ActivityDoesNotExist", f"Activity Does Not Exist: '{arn}' (deleted during the poll)"
        ) from None
    if task is None:
        return {}  # as AWS after its 60 s: no taskToken, and the worker polls again
    return {"taskToken": task.token, "input": json.dumps(task.input, separators=(",", ":"))}


def missing_activities(sfn: StepFunctions, definition: str) -> list[str]:
    """The activity ARNs a definition's Task states name that do not exist here (CreateStateMachine
    refuses them)."""
    try:
        parsed = json.loads(definition)
    except (ValueError, RecursionError):
        return []  # the validator reports the definition itself
    activities = _activities(sfn)
    missing = []
    for arn in sorted(set(_activity_resources(parsed))):
        name = ACTIVITY_ARN.match(arn).group(1)  # type: ignore[union-attr]
        if arn != sfn.arns.activity(name) or activities.creation_date(name) is None:
            missing.append(arn)
    return missing


def _activity_resources(value: Any) -> list[str]:
    # Every Task Resource at any depth: Parallel branches and Map iterators hold States too.
    found: list[str] = []
    if isinstance(value, dict):
        resource = value.get("Resource")
        if value.get("Type") == "Task" and isinstance(resource, str) and ACTIVITY_ARN.match(resource):
            found.append(resource)
        for child in value.values():
            found += _activity_resources(child)
    elif isinstance(value, list):
        for child in value:
            found += _activity_resources(child)
    return found


def _activities(sfn: StepFunctions) -> Activities:
    return Activities(sfn.client.redis, sfn.client.keys)


_POLLERS: dict[tuple[str, str], TaskPoller] = {}


def _poller(settings: Settings) -> TaskPoller:
    # One per Redis and prefix for the life of the process: its connections are pooled.
    key = (settings.redis_url, settings.prefix)
    if key not in _POLLERS:
        _POLLERS[key] = TaskPoller(settings)
    return _POLLERS[key]


@functools.cache
def _poll_seconds() -> float:
    return ApiSettings().activity_poll_seconds
