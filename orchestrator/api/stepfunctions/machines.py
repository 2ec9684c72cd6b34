"""State machine actions: Create, Describe, Update, Delete, List, Validate, and the one an execution runs."""

from __future__ import annotations

import re
import time
from typing import Any

from orchestrator.api.arns import name_problem
from orchestrator.api.errors import ApiError, validation_error
from orchestrator.api.pagination import listing_key
from orchestrator.api.stepfunctions import activities, versions
from orchestrator.api.stepfunctions.context import StepFunctions, page_size
from orchestrator.asl.errors import DefinitionError, Problem
from orchestrator.asl.validation import validate
from orchestrator.protocol.decoding import strict_loads
from orchestrator.runtime.catalog import MachineAlreadyExists, MachineEntry, MachineNotFound

ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
# AWS's console and CLI show these for a machine with no logging or tracing configured.
LOGGING_OFF = {"level": "OFF", "includeExecutionData": False}
TRACING_OFF = {"enabled": False}


def create_state_machine(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    name = request["name"]
    if problem := name_problem(name):
        raise ApiError("InvalidName", f"Invalid Name: '{name}': the name {problem}")
    # EXPRESS machines run as STANDARD ones do; StartSyncExecution serves only them, as on AWS.
    machine_type = request.get("type", "STANDARD")
    _refuse_unsupported(request)
    role_arn = _role_arn(request["roleArn"])
    _refuse_missing_activities(sfn, request["definition"])
    try:
        entry, _ = sfn.catalog.create(name, request["definition"], role_arn, machine_type, time.time())
    except DefinitionError as error:
        raise invalid_definition(error.problems) from None
    except MachineAlreadyExists:
        arn = sfn.arns.state_machine(name)
        raise ApiError(
            "StateMachineAlreadyExists",
            f"State Machine Already Exists: '{arn}' (with another definition, role or type;"
            " use UpdateStateMachine to change it)",
        ) from None
    answer = {"stateMachineArn": sfn.arns.state_machine(name), "creationDate": entry.creation_date}
    return answer | _published(sfn, entry, request)


def describe_state_machine(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    arn = request["stateMachineArn"]
    qualified = versions.split_arn(sfn, arn)
    if qualified.alias is not None:
        raise ApiError(
            "InvalidArn", f"Invalid Arn: '{arn}': describe an alias with DescribeStateMachineAlias"
        )
    if qualified.version is not None:
        return versions.describe_version(sfn, versions.version_of(sfn, arn))
    entry = sfn.machine(arn)
    return {
        "stateMachineArn": sfn.arns.state_machine(entry.name),
        "name": entry.name,
        "status": "ACTIVE",
        "definition": entry.definition,
        "roleArn": entry.role_arn or sfn.default_role_arn,
        "type": entry.type,
        "creationDate": entry.creation_date,
        "revisionId": entry.revision,
        "loggingConfiguration": LOGGING_OFF,
        "tracingConfiguration": TRACING_OFF,
    }


def update_state_machine(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    arn = request["stateMachineArn"]
    name = sfn.arns.state_machine_name(arn)
    definition, role_arn = request.get("definition"), request.get("roleArn")
    if definition is None and role_arn is None:
        raise ApiError(
            "MissingRequiredParameter", "Either the definition or the roleArn must be specified to update"
        )
    _refuse_unsupported(request)
    if definition is not None:
        _refuse_missing_activities(sfn, definition)
    try:
        entry = sfn.catalog.update(name, definition, _role_arn(role_arn) if role_arn else None, time.time())
    except DefinitionError as error:
        raise invalid_definition(error.problems) from None
    except MachineNotFound:
        raise ApiError("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{arn}'") from None
    return {"updateDate": entry.update_date, "revisionId": entry.revision} | _published(sfn, entry, request)


def delete_state_machine(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    name = sfn.arns.state_machine_name(request["stateMachineArn"])
    if sfn.catalog.get(name, time.time()) is not None:
        sfn.catalog.delete(name, time.time())
        # Its versions and aliases go with it (a machine created again under the name would not
        # see them anyway: they carry this one's creation date).
        sfn.client.redis.delete(
            versions.versions_key(sfn, name), f"{sfn.client.keys.prefix}:sfn-aliases:{name}"
        )
    return {}


def list_state_machines(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    limit, listing = page_size(request), listing_key("ListStateMachines")
    after = sfn.tokens.read(request["nextToken"], listing) if "nextToken" in request else None
    names = [name for name in sfn.catalog.names() if after is None or name > after]
    now = time.time()
    entries = [entry for name in names[:limit] if (entry := sfn.catalog.get(name, now)) is not None]
    answer: dict[str, Any] = {"stateMachines": [_list_item(sfn, entry) for entry in entries]}
    if len(names) > limit:
        answer["nextToken"] = sfn.tokens.issue(listing, names[limit - 1])
    return answer


def validate_state_machine_definition(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    limit = request.get("maxResults") or 100
    try:
        definition = strict_loads(request["definition"])
    except ValueError as error:
        diagnostics = [_diagnostic("INVALID_JSON_DESCRIPTION", Problem("/", f"not valid JSON: {error}"))]
    else:
        diagnostics = [_diagnostic("SCHEMA_VALIDATION_FAILED", problem) for problem in validate(definition)]
    return {
        "result": "FAIL" if diagnostics else "OK",
        "diagnostics": diagnostics[:limit],
        "truncated": len(diagnostics) > limit,
    }


def describe_state_machine_for_execution(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    described = sfn.execution(request["executionArn"])
    name, version = described["stateMachine"], described.get("stateMachineVersion")
    definition = sfn.catalog.definition_at(name, version) if version else None
    entry = sfn.catalog.get(name, time.time())
    if definition is None and entry is not None:
        definition = entry.definition
    if definition is None:
        raise ApiError(
            "ExecutionDoesNotExist",
            f"the definition execution '{request['executionArn']}' runs is no longer kept",
        )
    return {
        "stateMachineArn": sfn.arns.state_machine(name),
        "name": name,
        "definition": definition,
        "roleArn": (entry.role_arn if entry else None) or sfn.default_role_arn,
        "updateDate": entry.update_date if entry else described["startDate"],
        "revisionId": version,
        "loggingConfiguration": LOGGING_OFF,
        "tracingConfiguration": TRACING_OFF,
    }


def invalid_definition(problems: list[Problem]) -> ApiError:
    listed = "; ".join(f"at {p.where}: {p.message}" for p in problems)
    return ApiError(
        "InvalidDefinition", f"Invalid State Machine Definition: {len(problems)} problem(s): {listed}"
    )


def _published(sfn: StepFunctions, entry: MachineEntry, request: dict[str, Any]) -> dict[str, Any]:
    """With ``publish``, the version the request published (or the newest, if it holds the same)."""
    if not request.get("publish"):
        return {}
    version, _ = versions.publish(sfn, entry, request.get("versionDescription"))
    return {"stateMachineVersionArn": versions.version_arn(sfn, entry.name, version.number)}


def _refuse_unsupported(request: dict[str, Any]) -> None:
    if request.get("versionDescription") is not None and not request.get("publish"):
        raise validation_error("versionDescription is only accepted with publish set to true")
    if request.get("tags"):
        raise validation_error("tags are not supported by redstep yet: create the state machine without tags")


def _refuse_missing_activities(sfn: StepFunctions, definition: str) -> None:
    # As AWS: a Task may name only an activity that exists, in this region and account.
    missing = activities.missing_activities(sfn, definition)
    if missing:
        problems = [Problem("Resource", f"Activity does not exist: '{arn}'") for arn in missing]
        raise invalid_definition(problems)


def _role_arn(role_arn: str) -> str:
    if not ROLE_ARN.match(role_arn):
        raise ApiError(
            "InvalidArn",
            f"Invalid Arn: '{role_arn}': a role ARN reads arn:aws:iam::<12-digit account>:role/<name>",
        )
    return role_arn


def _list_item(sfn: StepFunctions, entry: MachineEntry) -> dict[str, Any]:
    return {
        "stateMachineArn": sfn.arns.state_machine(entry.name),
        "name": entry.name,
        "type": entry.type,
        "creationDate": entry.creation_date,
    }


def _diagnostic(code: str, problem: Problem) -> dict[str, Any]:
    return {"severity": "ERROR", "code": code, "message": problem.message, "location": problem.where}
