"""State machine versions: numbered, immutable snapshots of a machine's definition and role.

A machine's versions live in ``{p}:sfn-versions:<machine>``, a hash with ``next`` (the next
version number: numbers are never reused, as on AWS), ``created`` (the creation date of the
machine they belong to) and one field per version holding its JSON. A machine deleted and
created again under the same name has another creation date, so the old machine's versions
(and aliases, see aliases.py) are gone with it without DeleteStateMachine having to know.

A version's definition is also in the runtime's registry under its content hash (the catalog
puts every definition it stores there), so an execution started on a version runs that
definition to its end, as any execution runs the definition it started with.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

import redis

from orchestrator.api.errors import ApiError
from orchestrator.api.pagination import listing_key
from orchestrator.api.stepfunctions.context import StepFunctions, page_size
from orchestrator.runtime.catalog import MachineEntry

MAX_VERSIONS = 1000
"""AWS's quota of versions per state machine."""
VERSION_NUMBER = re.compile(r"^[1-9]\d{0,8}$")
ALIAS_NAME = re.compile(r"^(?=.*[a-zA-Z_\-.])[a-zA-Z0-9_\-.]{1,80}$")
GENERATION, NEXT = "created", "next"


@dataclass(frozen=True)
class Version:
    """One published version of a machine."""

    machine: str
    number: int
    definition: str
    role_arn: str | None
    type: str
    description: str
    creation_date: float
    revision: str


@dataclass(frozen=True)
class Qualified:
    """A state machine ARN split: the machine and what follows it (a version, an alias, or nothing)."""

    machine: str
    version: int | None = None
    alias: str | None = None


def versions_key(sfn: StepFunctions, machine: str) -> str:
    return f"{sfn.client.keys.prefix}:sfn-versions:{machine}"


def version_arn(sfn: StepFunctions, machine: str, number: int) -> str:
    return f"{sfn.arns.state_machine(machine)}:{number}"


def split_arn(sfn: StepFunctions, arn: str) -> Qualified:
    """What a state machine, version or alias ARN names.

    Raises:
        ApiError: InvalidArn, saying what is wrong with it.
    """
    fields = arn.split(":")
    if len(fields) != 8:
        return Qualified(sfn.arns.state_machine_name(arn))
    machine = sfn.arns.state_machine_name(":".join(fields[:7]))
    qualifier = fields[7]
    if VERSION_NUMBER.match(qualifier):
        return Qualified(machine, version=int(qualifier))
    if ALIAS_NAME.match(qualifier):
        return Qualified(machine, alias=qualifier)
    raise ApiError(
        "InvalidArn",
        f"Invalid Arn: '{arn}': after the state machine's name comes a version number (1, 2...) or an"
        " alias name (letters, digits, - _ . and not only digits)",
    )


def current_versions(
    sfn: StepFunctions, entry: MachineEntry, reader: redis.Redis | None = None
) -> dict[int, Version]:
    """The versions of the machine ``entry`` is, by number (none of an earlier machine of its name)."""
    raw = (reader or sfn.client.redis).hgetall(versions_key(sfn, entry.name))
    fields = {key.decode(): value.decode() for key, value in raw.items()}
    if fields.get(GENERATION) != repr(entry.creation_date):
        return {}
    return {
        int(field): _version(entry.name, int(field), json.loads(value))
        for field, value in fields.items()
        if field not in (GENERATION, NEXT)
    }


def version_of(sfn: StepFunctions, arn: str) -> Version:
    """The version a version ARN names.

    Raises:
        ApiError: InvalidArn, or StateMachineDoesNotExist for a well-formed ARN of none.
    """
    qualified = split_arn(sfn, arn)
    if qualified.version is None:
        raise ApiError(
            "InvalidArn", f"Invalid Arn: '{arn}': expected a version ARN (<state machine ARN>:<n>)"
        )
    entry = sfn.catalog.get(qualified.machine, time.time())
    version = current_versions(sfn, entry).get(qualified.version) if entry else None
    if version is None:
        raise ApiError("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{arn}'")
    return version


def publish(
    sfn: StepFunctions, entry: MachineEntry, description: str | None, revision_id: str | None = None
) -> tuple[Version, bool]:
    """Publish ``entry``'s current definition and role as a version; return it and whether it is new.

    As AWS: publishing what the newest version already holds returns that version, and the
    ``revision_id`` ``INITIAL`` names the revision of a machine never updated.

    Raises:
        ApiError: ConflictException when ``revision_id`` is not the machine's current revision;
            ServiceQuotaExceededException past 1,000 versions.
    """
    initial = revision_id == "INITIAL" and entry.update_date == entry.creation_date
    if revision_id is not None and revision_id != entry.revision and not initial:
        raise ApiError(
            "ConflictException",
            f"Conflict: the state machine's current revision is {entry.revision}, not {revision_id}:"
            " describe it again and publish the revision you mean",
        )
    key = versions_key(sfn, entry.name)

    def publish_in(pipe: redis.client.Pipeline) -> tuple[Version, bool]:
        versions = current_versions(sfn, entry, pipe)
        newest = versions[max(versions)] if versions else None
        if newest and (newest.definition, newest.role_arn) == (entry.definition, entry.role_arn):
            return newest, False  # as AWS: the description is not part of the idempotency check
        if len(versions) >= MAX_VERSIONS:
            raise ApiError(
                "ServiceQuotaExceededException",
                f"{entry.name} has {MAX_VERSIONS} versions, AWS's quota: delete old ones first",
            )
        fresh = not versions and pipe.hget(key, GENERATION) != repr(entry.creation_date).encode()
        number = 1 if fresh else int(pipe.hget(key, NEXT) or 1)
        now = time.time()
        record = {
            "definition": entry.definition,
            "roleArn": entry.role_arn,
            "type": entry.type,
            "description": description or "",
            "creationDate": now,
            "revisionId": entry.revision,
        }
        pipe.multi()
        if fresh:  # the versions of an earlier machine of that name go
            pipe.delete(key)
        pipe.hset(
            key,
            mapping={
                GENERATION: repr(entry.creation_date),
                NEXT: number + 1,
                str(number): json.dumps(record),
            },
        )
        return _version(entry.name, number, record), True

    return sfn.client.redis.transaction(publish_in, key, value_from_callable=True)


# -- actions ---------------------------------------------------------------------------------------


def publish_state_machine_version(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    arn = request["stateMachineArn"]
    qualified = split_arn(sfn, arn)
    if qualified.version is not None or qualified.alias is not None:
        raise ApiError(
            "InvalidArn", f"Invalid Arn: '{arn}': publish the state machine itself, not a version or alias"
        )
    entry = sfn.machine(arn)
    version, _ = publish(sfn, entry, request.get("description"), request.get("revisionId"))
    return {
        "creationDate": version.creation_date,
        "stateMachineVersionArn": version_arn(sfn, entry.name, version.number),
    }


def list_state_machine_versions(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    arn = request["stateMachineArn"]
    qualified = split_arn(sfn, arn)
    if qualified.version is not None or qualified.alias is not None:
        raise ApiError("InvalidArn", f"Invalid Arn: '{arn}': list the versions of the state machine itself")
    entry = sfn.machine(arn)
    listing = listing_key("ListStateMachineVersions", arn=arn, created=entry.creation_date)
    below = int(sfn.tokens.read(request["nextToken"], listing)) if "nextToken" in request else None
    versions = current_versions(sfn, entry)
    numbers = sorted((n for n in versions if below is None or n < below), reverse=True)
    limit = page_size(request)
    answer: dict[str, Any] = {
        "stateMachineVersions": [
            {
                "stateMachineVersionArn": version_arn(sfn, entry.name, number),
                "creationDate": versions[number].creation_date,
            }
            for number in numbers[:limit]
        ]
    }
    if len(numbers) > limit:
        answer["nextToken"] = sfn.tokens.issue(listing, numbers[limit - 1])
    return answer


def delete_state_machine_version(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    from orchestrator.api.stepfunctions import aliases  # aliases read versions: no import cycle at load

    arn = request["stateMachineVersionArn"]
    qualified = split_arn(sfn, arn)
    if qualified.version is None:
        raise ApiError(
            "InvalidArn", f"Invalid Arn: '{arn}': expected a version ARN (<state machine ARN>:<n>)"
        )
    entry = sfn.catalog.get(qualified.machine, time.time())
    if entry is None:
        return {}  # as AWS: deleting what is not there succeeds
    key, aliases_key = versions_key(sfn, entry.name), aliases.aliases_key(sfn, entry.name)

    def delete_in(pipe: redis.client.Pipeline) -> None:
        if qualified.version not in current_versions(sfn, entry, pipe):
            return
        routing = [
            alias
            for alias in aliases.current_aliases(sfn, entry, pipe).values()
            if qualified.version in alias.weights
        ]
        if routing:
            names = ", ".join(sorted(alias.name for alias in routing))
            raise ApiError(
                "ConflictException",
                f"Conflict: version {qualified.version} of {entry.name} cannot be deleted while alias(es)"
                f" {names} route to it: update or delete them first",
            )
        pipe.multi()
        pipe.hdel(key, str(qualified.version))

    sfn.client.redis.transaction(delete_in, key, aliases_key)
    return {}


def describe_version(sfn: StepFunctions, version: Version) -> dict[str, Any]:
    """DescribeStateMachine's answer for a version ARN."""
    from orchestrator.api.stepfunctions.machines import LOGGING_OFF, TRACING_OFF

    return {
        "stateMachineArn": version_arn(sfn, version.machine, version.number),
        "name": version.machine,
        "status": "ACTIVE",
        "definition": version.definition,
        "roleArn": version.role_arn or sfn.default_role_arn,
        "type": version.type,
        "creationDate": version.creation_date,
        "revisionId": version.revision,
        "description": version.description,
        "loggingConfiguration": LOGGING_OFF,
        "tracingConfiguration": TRACING_OFF,
    }


def _version(machine: str, number: int, record: dict[str, Any]) -> Version:
    return Version(
        machine=machine,
        number=number,
        definition=record["definition"],
        role_arn=record.get("roleArn"),
        type=record.get("type", "STANDARD"),
        description=record.get("description", ""),
        creation_date=float(record["creationDate"]),
        revision=record["revisionId"],
    )


# -- which version (and alias) an execution was started through --------------------------------------


def origins_key(sfn: StepFunctions) -> str:
    return f"{sfn.client.keys.prefix}:sfn-execution-origins"


def record_origin(sfn: StepFunctions, described: dict[str, Any], number: int, alias: str | None) -> None:
    """Remember that the execution ``described`` runs version ``number`` (through ``alias``)."""
    origin = {
        "machine": described["stateMachine"],
        "startDate": described["startDate"],
        "version": number,
        "alias": alias,
    }
    sfn.client.redis.hset(origins_key(sfn), described["name"], json.dumps(origin))


def origins(sfn: StepFunctions, described: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The version (and alias) each of the executions ``described`` was started through, by name.

    An entry counts only for the execution it was written for: one of the same name and start,
    so an execution swept by retention and another started under its name later never share it.
    """
    if not described:
        return {}
    names = [execution["name"] for execution in described]
    found = {}
    for execution, raw in zip(described, sfn.client.redis.hmget(origins_key(sfn), names), strict=True):
        if raw is None:
            continue
        origin = json.loads(raw)
        if (origin["machine"], origin["startDate"]) == (execution["stateMachine"], execution["startDate"]):
            found[execution["name"]] = origin
    return found


VERSION_ACTIONS = {
    "PublishStateMachineVersion": publish_state_machine_version,
    "ListStateMachineVersions": list_state_machine_versions,
    "DeleteStateMachineVersion": delete_state_machine_version,
}
