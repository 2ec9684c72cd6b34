"""State machine aliases: a name that routes executions to one or two versions by weight.

A machine's aliases live in ``{p}:sfn-aliases:<machine>``, a hash with ``created`` (the
creation date of the machine they belong to, as for versions) and one field per alias
holding its JSON. An alias routes only to versions that exist: DeleteStateMachineVersion
refuses a version an alias routes to (versions.py watches this hash while it deletes).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Any

import redis

from orchestrator.api.errors import ApiError, validation_error
from orchestrator.api.pagination import listing_key
from orchestrator.api.stepfunctions import versions
from orchestrator.api.stepfunctions.context import StepFunctions, page_size
from orchestrator.runtime.catalog import MachineEntry

MAX_ALIASES = 100
"""AWS's quota of aliases per state machine."""


@dataclass(frozen=True)
class Alias:
    """One alias: its routing (version number -> weight in percent) and what AWS shows about it."""

    machine: str
    name: str
    weights: dict[int, int]
    description: str
    creation_date: float
    update_date: float

    def pick(self) -> int:
        """The version one execution started through the alias runs, drawn by weight."""
        numbers = [number for number, weight in self.weights.items() if weight > 0]
        return random.choices(numbers, weights=[self.weights[n] for n in numbers])[0]


def aliases_key(sfn: StepFunctions, machine: str) -> str:
    return f"{sfn.client.keys.prefix}:sfn-aliases:{machine}"


def alias_arn(sfn: StepFunctions, machine: str, name: str) -> str:
    return f"{sfn.arns.state_machine(machine)}:{name}"


def current_aliases(
    sfn: StepFunctions, entry: MachineEntry, reader: redis.Redis | None = None
) -> dict[str, Alias]:
    """The aliases of the machine ``entry`` is, by name (none of an earlier machine of its name)."""
    raw = (reader or sfn.client.redis).hgetall(aliases_key(sfn, entry.name))
    fields = {key.decode(): value.decode() for key, value in raw.items()}
    if fields.get(versions.GENERATION) != repr(entry.creation_date):
        return {}
    return {
        name: _alias(entry.name, name, json.loads(value))
        for name, value in fields.items()
        if name != versions.GENERATION
    }


def alias_of(sfn: StepFunctions, arn: str) -> tuple[MachineEntry, Alias]:
    """The machine and alias an alias ARN names.

    Raises:
        ApiError: InvalidArn, or ResourceNotFound for a well-formed ARN of none.
    """
    qualified = versions.split_arn(sfn, arn)
    if qualified.alias is None:
        raise ApiError(
            "InvalidArn", f"Invalid Arn: '{arn}': expected an alias ARN (<state machine ARN>:<alias>)"
        )
    entry = sfn.catalog.get(qualified.machine, time.time())
    alias = current_aliases(sfn, entry).get(qualified.alias) if entry else None
    if entry is None or alias is None:
        raise ApiError("ResourceNotFound", f"Resource not found: '{arn}'")
    return entry, alias


# -- actions ---------------------------------------------------------------------------------------


def create_state_machine_alias(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    name = request["name"]
    if not versions.ALIAS_NAME.match(name):
        raise ApiError(
            "InvalidName",
            f"Invalid Name: '{name}': an alias name is 1 to 80 letters, digits, - _ and ., not only digits",
        )
    entry, weights = _routing(sfn, request["routingConfiguration"])
    key, now = aliases_key(sfn, entry.name), time.time()

    def create_in(pipe: redis.client.Pipeline) -> Alias:
        existing = current_aliases(sfn, entry, pipe)
        if name in existing:
            alias = existing[name]
            if (alias.weights, alias.description) != (weights, request.get("description", "")):
                raise ApiError(
                    "ConflictException",
                    f"Conflict: alias '{alias_arn(sfn, entry.name, name)}' exists with another routing or"
                    " description: use UpdateStateMachineAlias to change it",
                )
            return alias
        if len(existing) >= MAX_ALIASES:
            raise ApiError(
                "ServiceQuotaExceededException", f"{entry.name} has {MAX_ALIASES} aliases, AWS's quota"
            )
        _check_versions_exist(sfn, entry, weights, pipe)
        record = _record(weights, request.get("description", ""), now, now)
        fresh = pipe.hget(key, versions.GENERATION) != repr(entry.creation_date).encode()
        pipe.multi()
        if fresh:  # the aliases of an earlier machine of that name go
            pipe.delete(key)
        pipe.hset(key, mapping={versions.GENERATION: repr(entry.creation_date), name: json.dumps(record)})
        return _alias(entry.name, name, record)

    alias = sfn.client.redis.transaction(
        create_in, key, versions.versions_key(sfn, entry.name), value_from_callable=True
    )
    return {"stateMachineAliasArn": alias_arn(sfn, entry.name, name), "creationDate": alias.creation_date}


def describe_state_machine_alias(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    entry, alias = alias_of(sfn, request["stateMachineAliasArn"])
    return {
        "stateMachineAliasArn": alias_arn(sfn, entry.name, alias.name),
        "name": alias.name,
        "description": alias.description,
        "routingConfiguration": [
            {"stateMachineVersionArn": versions.version_arn(sfn, entry.name, number), "weight": weight}
            for number, weight in alias.weights.items()
        ],
        "creationDate": alias.creation_date,
        "updateDate": alias.update_date,
    }


def update_state_machine_alias(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    arn = request["stateMachineAliasArn"]
    if "description" not in request and "routingConfiguration" not in request:
        raise validation_error(
            "Either the description or the routingConfiguration must be specified to update"
        )
    entry, _ = alias_of(sfn, arn)
    weights = None
    if "routingConfiguration" in request:
        routed_entry, weights = _routing(sfn, request["routingConfiguration"])
        if routed_entry.name != entry.name:
            raise validation_error(
                f"the routing configuration names versions of {routed_entry.name}, but alias '{arn}'"
                f" belongs to {entry.name}"
            )
    key, now = aliases_key(sfn, entry.name), time.time()
    name = versions.split_arn(sfn, arn).alias or ""

    def update_in(pipe: redis.client.Pipeline) -> None:
        alias = current_aliases(sfn, entry, pipe).get(name)
        if alias is None:
            raise ApiError("ResourceNotFound", f"Resource not found: '{arn}'")
        if weights is not None:
            _check_versions_exist(sfn, entry, weights, pipe)
        record = _record(
            weights if weights is not None else alias.weights,
            request.get("description", alias.description),
            alias.creation_date,
            now,
        )
        pipe.multi()
        pipe.hset(key, name, json.dumps(record))

    sfn.client.redis.transaction(update_in, key, versions.versions_key(sfn, entry.name))
    return {"updateDate": now}


def delete_state_machine_alias(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    entry, alias = alias_of(sfn, request["stateMachineAliasArn"])
    sfn.client.redis.hdel(aliases_key(sfn, entry.name), alias.name)
    return {}


def list_state_machine_aliases(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    arn = request["stateMachineArn"]
    qualified = versions.split_arn(sfn, arn)
    if qualified.alias is not None:
        raise ApiError(
            "InvalidArn", f"Invalid Arn: '{arn}': list the aliases of a state machine or a version"
        )
    entry = sfn.catalog.get(qualified.machine, time.time())
    if entry is None:
        raise ApiError("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{arn}'")
    if qualified.version is not None and qualified.version not in versions.current_versions(sfn, entry):
        raise ApiError("ResourceNotFound", f"Resource not found: '{arn}'")
    listing = listing_key("ListStateMachineAliases", arn=arn, created=entry.creation_date)
    after = sfn.tokens.read(request["nextToken"], listing) if "nextToken" in request else None
    found = sorted(
        (
            alias
            for alias in current_aliases(sfn, entry).values()
            if (after is None or alias.name > after)
            and (qualified.version is None or qualified.version in alias.weights)
        ),
        key=lambda alias: alias.name,
    )
    limit = page_size(request)
    answer: dict[str, Any] = {
        "stateMachineAliases": [
            {
                "stateMachineAliasArn": alias_arn(sfn, entry.name, alias.name),
                "creationDate": alias.creation_date,
            }
            for alias in found[:limit]
        ]
    }
    if len(found) > limit:
        answer["nextToken"] = sfn.tokens.issue(listing, found[limit - 1].name)
    return answer


def _routing(sfn: StepFunctions, routing: list[dict[str, Any]]) -> tuple[MachineEntry, dict[int, int]]:
    """The machine a routing configuration's versions belong to, and its weights by version.

    Raises:
        ApiError: InvalidArn for what is no version ARN, ValidationException for versions of
            two machines, a version named twice or weights that do not add up to 100,
            ResourceNotFound when the machine does not exist.
    """
    machines, weights = set(), {}
    for item in routing:
        arn = item["stateMachineVersionArn"]
        qualified = versions.split_arn(sfn, arn)
        if qualified.version is None:
            raise ApiError(
                "InvalidArn",
                f"Invalid Arn: '{arn}': an alias routes to version ARNs (<state machine ARN>:<n>)",
            )
        if qualified.version in weights:
            raise validation_error(f"the routing configuration names version '{arn}' twice")
        machines.add(qualified.machine)
        weights[qualified.version] = item["weight"]
    if len(machines) > 1:
        raise validation_error(
            f"the routing configuration names versions of {len(machines)} state machines; an alias routes"
            " to versions of one"
        )
    if sum(weights.values()) != 100:
        raise validation_error(
            f"the routing configuration's weights add up to {sum(weights.values())}; they must add up to 100"
        )
    (machine,) = machines
    entry = sfn.catalog.get(machine, time.time())
    if entry is None:
        raise ApiError("ResourceNotFound", f"Resource not found: '{sfn.arns.state_machine(machine)}'")
    return entry, weights


def _check_versions_exist(
    sfn: StepFunctions, entry: MachineEntry, weights: dict[int, int], reader: redis.Redis
) -> None:
    kept = versions.current_versions(sfn, entry, reader)
    for number in weights:
        if number not in kept:
            raise ApiError(
                "ResourceNotFound", f"Resource not found: '{versions.version_arn(sfn, entry.name, number)}'"
            )


def _record(weights: dict[int, int], description: str, created: float, updated: float) -> dict[str, Any]:
    return {
        "routing": [[number, weight] for number, weight in weights.items()],
        "description": description,
        "creationDate": created,
        "updateDate": updated,
    }


def _alias(machine: str, name: str, record: dict[str, Any]) -> Alias:
    return Alias(
        machine=machine,
        name=name,
        weights={int(number): int(weight) for number, weight in record["routing"]},
        description=record.get("description", ""),
        creation_date=float(record["creationDate"]),
        update_date=float(record.get("updateDate", record["creationDate"])),
    )


ALIAS_ACTIONS = {
    "CreateStateMachineAlias": create_state_machine_alias,
    "DescribeStateMachineAlias": describe_state_machine_alias,
    "UpdateStateMachineAlias": update_state_machine_alias,
    "DeleteStateMachineAlias": delete_state_machine_alias,
    "ListStateMachineAliases": list_state_machine_aliases,
}
