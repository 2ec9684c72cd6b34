"""ValidateDragon and AddDragon, the reference application's two functions, on a Redis store.

The store is one hash, ``{prefix}:dragons``: field = the dragon's name, value = its record
as JSON. AddDragon inserts with HSETNX, so of two executions racing on one name exactly one
inserts and the other gets DragonAlreadyExists, which the state machine catches.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from redis import Redis

from orchestrator.runtime.keys import Keys

NAME_FIELD = "dragon_name_str"
RECORD_FIELDS = (
    NAME_FIELD,
    "description_str",
    "family_str",
    "location_city_str",
    "location_state_str",
    "location_country_str",
    "location_neighborhood_str",
    "reportingPhoneNumber",
    "confirmationRequired",
)
"""The fields of a dragon record; anything else an execution adds to the event is not stored."""


class DragonAlreadyExists(Exception):
    """AddDragon found the name taken; the state machine catches this class name."""


class InvalidDragonRecord(ValueError):
    """The event is not a dragon record (no usable ``dragon_name_str``)."""


class StoreContext(Protocol):
    """What the dragon functions need from their ``context``: where the store lives."""

    redis: Redis | None
    prefix: str


class DragonStore:
    """The dragons known so far, in the hash ``{prefix}:dragons``."""

    def __init__(self, connection: Redis, prefix: str) -> None:
        self.connection = connection
        self.key = Keys(prefix).dragons

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

    def add(self, record: dict[str, Any]) -> bool:
        """Store ``record`` unless its name is taken; True when this call inserted it."""
        name = dragon_name(record)
        stored = {field: record[field] for field in RECORD_FIELDS if field in record}
        return bool(self.connection.hsetnx(self.key, name, json.dumps(stored, separators=(",", ":"))))

    def get(self, name: str) -> dict[str, Any] | None:
        """The stored record of this dragon, or None."""
        raw = self.connection.hget(self.key, name)
        return None if raw is None else json.loads(raw)

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
    """Store the dragon in ``event``.

    Raises:
        DragonAlreadyExists: when the name is taken, including by a racing execution.
    """
    name = dragon_name(event)
    if not DragonStore.of(context).add(event):
        raise DragonAlreadyExists(f"Dragon {name} already exists")
    return {NAME_FIELD: name, "inserted": True}
