"""The registry of state machines: name -> definition JSON in one Redis hash."""

from __future__ import annotations

import json
import time
from importlib import resources
from typing import Any

import redis

from orchestrator.asl.definition import StateMachine
from orchestrator.runtime.keys import Keys

DRAGON_PIPELINE = "DragonPipeline"


def dragon_pipeline_definition() -> str:
    """The shipped dragon pipeline definition (ASL JSON text)."""
    return resources.files("orchestrator").joinpath("state_machines", "dragon_pipeline.asl.json").read_text()


def register_machine(
    redis_client: redis.Redis, keys: Keys, name: str, definition: dict[str, Any] | str
) -> None:
    """Validate ``definition`` and store it under ``name`` (replacing an older one).

    Raises:
        DefinitionError: with every problem and its JSON path, before anything is stored.
    """
    StateMachine.parse(definition, name)
    text = definition if isinstance(definition, str) else json.dumps(definition)
    redis_client.hset(keys.machines, name, text)


def register_shipped_machines(redis_client: redis.Redis, keys: Keys) -> None:
    register_machine(redis_client, keys, DRAGON_PIPELINE, dragon_pipeline_definition())


class MachineCache:
    """Parsed state machines by name, re-read from Redis at most every ``refresh_seconds``.

    A name nobody registered is remembered as missing for the same interval, so a flood of
    executions of an unknown machine costs no extra round trips.
    """

    def __init__(self, redis_client: redis.Redis, keys: Keys, refresh_seconds: float = 1.0) -> None:
        self.redis = redis_client
        self.keys = keys
        self.refresh_seconds = refresh_seconds
        self._machines: dict[str, tuple[float, str | None, StateMachine | None]] = {}

    def get(self, name: str) -> StateMachine | None:
        """The machine called ``name``, or None when no valid definition is registered under it."""
        now = time.monotonic()
        cached = self._machines.get(name)
        if cached and now - cached[0] < self.refresh_seconds:
            return cached[2]
        raw = self.redis.hget(self.keys.machines, name)
        text = raw.decode() if isinstance(raw, bytes) else raw
        machine = cached[2] if cached and cached[1] == text else self._parse(text, name)
        self._machines[name] = (now, text, machine)
        return machine

    @staticmethod
    def _parse(text: str | None, name: str) -> StateMachine | None:
        if text is None:
            return None
        try:
            return StateMachine.parse(text, name)
        except ValueError:
            return None
