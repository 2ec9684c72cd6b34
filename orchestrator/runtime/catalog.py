"""State machines as the Step Functions API sees them: a definition with a role, a type and dates.

The registry (runtime.machines) keeps name -> definition; the catalog adds, per name, what
AWS shows besides (roleArn, type, creationDate, updateDate) in ``{p}:machine-details``. A
machine registered another way (``redstep machines register``, the orchestrator's shipped
DragonPipeline) is taken into the catalog the first time it is read.

``executionsSince`` keeps deleted machines' executions apart from a new machine of the same
name: an execution counts as the machine's only when it started at or after that time.
DeleteStateMachine leaves ``{"deleted": <time>}`` behind so that a machine registered under
the name later, by any path, starts from then. Versions stay in the registry, so executions
still running when their machine is deleted run on to their end.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis

from orchestrator.asl.definition import StateMachine
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.machines import machine_version


class MachineAlreadyExists(ValueError):
    """A machine of that name exists with another definition, role or type."""


class MachineNotFound(LookupError):
    """No state machine has that name."""


@dataclass(frozen=True)
class MachineEntry:
    """One state machine: its current definition and what the API shows about it."""

    name: str
    definition: str
    role_arn: str | None
    type: str
    creation_date: float
    update_date: float
    executions_since: float

    @property
    def revision(self) -> str:
        return machine_version(self.definition)


class Catalog:
    """The state machines of one installation."""

    def __init__(self, redis_client: redis.Redis, keys: Keys) -> None:
        self.redis = redis_client
        self.keys = keys

    def get(self, name: str, now: float) -> MachineEntry | None:
        """The machine called ``name``, or None; one registered another way is taken in at ``now``."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(self.keys.machines, name)
        pipe.hget(self.keys.machine_details, name)
        definition, raw = pipe.execute()
        if definition is None:
            return None
        details = json.loads(raw) if raw is not None else {}
        if "creationDate" not in details:
            details = _adopted(details, now)
            if raw is not None:  # the tombstone of a deleted machine of that name
                self.redis.hset(self.keys.machine_details, name, json.dumps(details))
            elif not self.redis.hsetnx(self.keys.machine_details, name, json.dumps(details)):
                return self.get(name, now)  # another reader took it in first: use its dates
        return _entry(name, definition.decode(), details)

    def names(self) -> list[str]:
        """Every registered machine's name, sorted."""
        return sorted(name.decode() for name in self.redis.hkeys(self.keys.machines))

    def create(
        self, name: str, definition: str, role_arn: str, machine_type: str, now: float
    ) -> tuple[MachineEntry, bool]:
        """Register a new machine; return it and whether this call created it.

        As AWS: creating one that exists with the same definition, role and type returns it
        unchanged.

        Raises:
            DefinitionError: the definition is not valid ASL (nothing is written).
            MachineAlreadyExists: the name is taken by a different machine.
        """
        StateMachine.parse(definition, name)

        def create_in(pipe: redis.client.Pipeline) -> tuple[MachineEntry, bool]:
            existing = pipe.hget(self.keys.machines, name)
            raw = pipe.hget(self.keys.machine_details, name)
            details = json.loads(raw) if raw is not None else {}
            if existing is not None:
                entry = _entry(
                    name, existing.decode(), details if "creationDate" in details else _adopted(details, now)
                )
                if (entry.definition, entry.role_arn, entry.type) != (definition, role_arn, machine_type):
                    raise MachineAlreadyExists(name)
                return entry, False
            details = {
                "roleArn": role_arn,
                "type": machine_type,
                "creationDate": now,
                "updateDate": now,
                "executionsSince": now,
            }
            pipe.multi()
            pipe.hset(self.keys.machine_versions, f"{name}@{machine_version(definition)}", definition)
            pipe.hset(self.keys.machines, name, definition)
            pipe.hset(self.keys.machine_details, name, json.dumps(details))
            return _entry(name, definition, details), True

        return self.redis.transaction(
            create_in, self.keys.machines, self.keys.machine_details, value_from_callable=True
        )

    def update(self, name: str, definition: str | None, role_arn: str | None, now: float) -> MachineEntry:
        """Change a machine's definition and/or role; running executions keep their version.

        Raises:
            DefinitionError: the new definition is not valid ASL (nothing is written).
            MachineNotFound: no machine has the name.
        """
        if definition is not None:
            StateMachine.parse(definition, name)

        def update_in(pipe: redis.client.Pipeline) -> MachineEntry:
            current = self.get(name, now) if pipe.hexists(self.keys.machines, name) else None
            if current is None:
                raise MachineNotFound(name)
            text = definition if definition is not None else current.definition
            details = {
                "roleArn": role_arn if role_arn is not None else current.role_arn,
                "type": current.type,
                "creationDate": current.creation_date,
                "updateDate": now,
                "executionsSince": current.executions_since,
            }
            pipe.multi()
            pipe.hset(self.keys.machine_versions, f"{name}@{machine_version(text)}", text)
            pipe.hset(self.keys.machines, name, text)
            pipe.hset(self.keys.machine_details, name, json.dumps(details))
            return _entry(name, text, details)

        return self.redis.transaction(
            update_in, self.keys.machines, self.keys.machine_details, value_from_callable=True
        )

    def delete(self, name: str, now: float) -> None:
        """Remove a machine: no new execution starts on it; its versions stay for running ones."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(self.keys.machines, name)
        pipe.hset(self.keys.machine_details, name, json.dumps({"deleted": now}))
        pipe.execute()

    def definition_at(self, name: str, version: str) -> str | None:
        """The definition text of ``name`` at ``version``, as kept in the registry, or None."""
        raw = self.redis.hget(self.keys.machine_versions, f"{name}@{version}")
        return raw.decode() if raw is not None else None


def _adopted(details: dict[str, Any], now: float) -> dict[str, Any]:
    # A machine never seen by the API: created now as far as it can tell, and only the
    # executions since its name was last deleted (if ever) are its own.
    since = float(details.get("deleted", 0.0))
    return {
        "roleArn": None,
        "type": "STANDARD",
        "creationDate": now,
        "updateDate": now,
        "executionsSince": since,
    }


def _entry(name: str, definition: str, details: dict[str, Any]) -> MachineEntry:
    return MachineEntry(
        name=name,
        definition=definition,
        role_arn=details.get("roleArn"),
        type=details.get("type", "STANDARD"),
        creation_date=float(details["creationDate"]),
        update_date=float(details.get("updateDate", details["creationDate"])),
        executions_since=float(details.get("executionsSince", 0.0)),
    )
