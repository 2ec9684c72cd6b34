"""ValidateDragon and AddDragon, the reference application's two functions, on a Redis store.

The store is one hash, ``{prefix}:dragons``: field = the dragon's name, value = its record
as JSON, plus the name of the execution that inserted it under ``execution``. AddDragon
inserts with HSETNX, so of two executions racing on one name exactly one inserts and the
other gets DragonAlreadyExists, which the state machine catches. A task runs at least once:
when a worker dies after the insert and before its report, the retried AddDragon of the same
execution finds its own record and succeeds as the first attempt did.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from redis import Redis

from orchestrator.dragon_record import ALL_FIELDS, NAME_FIELD
from orchestrator.protocol.keys import SharedKeys


class DragonAlreadyExists(Exception):
    """AddDragon found the name taken; the state machine catches this class name."""


class InvalidDragonRecord(ValueError):
    """The event is not a dragon record (no usable ``dragon_name_str``)."""


EXECUTION_FIELD = "execution"
"""Where a stored record names the execution that inserted it (kept apart from the record)."""


class StoreContext(Protocol):
    """What the dragon functions need from their ``context``: where the store lives."""

    redis: Redis | None
    prefix: str
    execution: str


class DragonStore:
    """The dragons known so far, in the hash ``{prefix}:dragons``."""

    def __init__(self, connection: Redis, prefix: str) -> None:
        self.connection = connection
        self.key = SharedKeys(prefix).dragons

    @classmethod
    def of(cls, context: StoreContext) -> DragonStore:
        """The store that ``context`` points at.

        Raises:
            RuntimeError: when the context carries no Redis connection.
        """
        if context.redis is None:
            raise RuntimeError("the dragon store needs a Redis connection on the context (context.redis)")
        return cls(context.redis, context.prefix)

    def exists(self, name: str) -> bool:
        """Whether a dragon of this name is stored."""
        return bool(self.connection.hexists(self.key, name))

    def add(self, record: dict[str, Any], execution: str = "") -> bool:
        """Store ``record`` unless its name is taken.

        Args:
            record: the dragon record; fields other than ALL_FIELDS are not stored.
            execution: the execution inserting it ("" for none): an earlier insert by the same
                execution counts as this one.

        Returns:
            True when this call inserted the record, or ``execution`` had inserted it before.
        """
        name = dragon_name(record)
        stored: dict[str, Any] = {field: record[field] for field in ALL_FIELDS if field in record}
        if execution:
            stored[EXECUTION_FIELD] = execution
        if self.connection.hsetnx(self.key, name, json.dumps(stored, separators=(",", ":"))):
            return True
        return bool(execution) and self.inserted_by(name) == execution

    def get(self, name: str) -> dict[str, Any] | None:
        """The stored record of this dragon, or None."""
        raw = self.connection.hget(self.key, name)
        if raw is None:
            return None
        record = json.loads(raw)
        record.pop(EXECUTION_FIELD, None)
        return record

    def inserted_by(self, name: str) -> str | None:
        """The execution that inserted this dragon, when one did."""
        raw = self.connection.hget(self.key, name)
        return None if raw is None else json.loads(raw).get(EXECUTION_FIELD)

    def count(self) -> int:
        """How many dragons are stored."""
        return int(self.connection.hlen(self.key))


def dragon_name(record: object) -> str:
    """The dragon's name from its record.

    Raises:
        InvalidDragonRecord: when the record is not an object with a non-empty string name.
    """
    name = record.get(NAME_FIELD) if isinstance(record, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise InvalidDragonRecord(f"a dragon record needs a non-empty string {NAME_FIELD}: {record!r:.200}")
    return name


def ValidateDragon(event: dict[str, Any], context: StoreContext) -> dict[str, bool]:
    """Whether the dragon in ``event`` is already stored: ``{"exists": bool}``."""
    return {"exists": DragonStore.of(context).exists(dragon_name(event))}


def AddDragon(event: dict[str, Any], context: StoreContext) -> dict[str, Any]:
    """Store the dragon in ``event``; a retry of an insert that landed succeeds again.

    Raises:
        DragonAlreadyExists: when another execution took the name, including a racing one.
    """
    name = dragon_name(event)
    if not DragonStore.of(context).add(event, getattr(context, "execution", "")):
        raise DragonAlreadyExists(f"Dragon {name} already exists")
    return {NAME_FIELD: name, "inserted": True}
