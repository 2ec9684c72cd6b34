"""The registry of state machines: name -> definition JSON, and every version ever registered.

As on AWS, an execution runs to its end on the definition it started with: registering a
new definition under a name changes what new executions run, not what running ones do. A
version is named by the definition's content (the start of its SHA-256), so registering the
same text again makes no new version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from importlib import resources
from typing import Any

import redis

from orchestrator.asl.definition import StateMachine
from orchestrator.asl.errors import DefinitionError, Problem
from orchestrator.protocol.decoding import strict_loads
from orchestrator.runtime.keys import Keys

log = logging.getLogger(__name__)

DRAGON_PIPELINE = "DragonPipeline"
SHIPPED_TOPIC = "dragon-notifications"
"""The topic the shipped definition names; it publishes to the installation's topic instead."""
SHIPPED_TOPIC_ARN = f"arn:aws:sns:us-east-1:000000000000:{SHIPPED_TOPIC}"


class RetentionValueError(ValueError):
    """A machine's retention that cannot be kept: not a number, negative, or for no known machine."""


def dragon_pipeline_definition(topic: str = SHIPPED_TOPIC) -> str:
    """The shipped dragon pipeline definition (ASL JSON text), its notifications published to ``topic``.

    An installation whose topic is not the default (``REDSTEP_TOPIC``) gets a definition that
    publishes where its subscribers listen; the default's text is the file's, byte for byte, so
    its version does not change.
    """
    text = resources.files("orchestrator").joinpath("state_machines", "dragon_pipeline.asl.json").read_text()
    if topic == SHIPPED_TOPIC:
        return text
    arn = topic if topic.startswith("arn:") else SHIPPED_TOPIC_ARN.removesuffix(SHIPPED_TOPIC) + topic
    return text.replace(json.dumps(SHIPPED_TOPIC_ARN), json.dumps(arn))


def register_machine(
    redis_client: redis.Redis, keys: Keys, name: str, definition: dict[str, Any] | str
) -> None:
    """Validate ``definition`` and store it under ``name`` (replacing an older one).

    Raises:
        DefinitionError: with every problem and its JSON path, before anything is stored.
    """
    parsed = definition
    if isinstance(definition, str):
        try:
            parsed = strict_loads(definition)  # the core's parse reads NaN and the infinities, as Python does
        except ValueError as exc:
            raise DefinitionError([Problem("/", f"not valid JSON: {exc}")]) from None
    StateMachine.parse(parsed, name)
    text = definition if isinstance(definition, str) else json.dumps(definition)
    pipe = redis_client.pipeline(transaction=True)
    # The version first: an execution never starts on a version that is not kept.
    pipe.hset(keys.machine_versions, f"{name}@{machine_version(text)}", text)
    pipe.hset(keys.machines, name, text)
    pipe.execute()


def machine_version(text: str) -> str:
    """The version of a definition: the first 16 hex digits of the SHA-256 of its JSON text."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def shipped_machines(topic: str = SHIPPED_TOPIC) -> dict[str, str]:
    """The state machines redstep ships, by name: their definitions' JSON text, publishing to ``topic``."""
    return {DRAGON_PIPELINE: dragon_pipeline_definition(topic)}


def register_shipped_machines(redis_client: redis.Redis, keys: Keys, topic: str = SHIPPED_TOPIC) -> None:
    for name, definition in shipped_machines(topic).items():
        register_machine(redis_client, keys, name, definition)


def restore_shipped_machines(redis_client: redis.Redis, keys: Keys, topic: str = SHIPPED_TOPIC) -> list[str]:
    """Register again each shipped machine that has no definition (Redis lost its data); their names.

    A definition registered under a shipped name is left as it is.
    """
    missing = {
        name: definition
        for name, definition in shipped_machines(topic).items()
        if not redis_client.hexists(keys.machines, name)
    }
    for name, definition in missing.items():
        register_machine(redis_client, keys, name, definition)
    return list(missing)


class MachineCache:
    """Parsed state machines by name, re-read from Redis at most every ``refresh_seconds``.

    A name nobody registered is remembered as missing for the same interval, so a flood of
    executions of an unknown machine costs no extra round trips. A version never changes, so
    once read it is kept for good.
    """

    def __init__(self, redis_client: redis.Redis, keys: Keys, refresh_seconds: float = 1.0) -> None:
        self.redis = redis_client
        self.keys = keys
        self.refresh_seconds = refresh_seconds
        self._machines: dict[str, tuple[float, str | None, StateMachine | None]] = {}
        self._versions: dict[tuple[str, str], StateMachine] = {}

    def get(self, name: str, version: str | None = None) -> StateMachine | None:
        """The machine called ``name``: at ``version`` when given, else its current definition.

        None when no valid definition is registered under the name. A version the registry
        does not hold (an execution started before versions were kept) gives the current one.
        """
        if version is not None:
            machine = self._versions.get((name, version)) or self._version(name, version)
            if machine is not None:
                return machine
        now = time.monotonic()
        cached = self._machines.get(name)
        if cached and now - cached[0] < self.refresh_seconds:
            return cached[2]
        raw = self.redis.hget(self.keys.machines, name)
        text = raw.decode() if isinstance(raw, bytes) else raw
        machine = cached[2] if cached and cached[1] == text else self._parse(text, name)
        self._machines[name] = (now, text, machine)
        return machine

    def _version(self, name: str, version: str) -> StateMachine | None:
        raw = self.redis.hget(self.keys.machine_versions, f"{name}@{version}")
        machine = self._parse(raw.decode() if isinstance(raw, bytes) else raw, name)
        if machine is not None:
            self._versions[(name, version)] = machine
        return machine

    @staticmethod
    def _parse(text: str | None, name: str) -> StateMachine | None:
        if text is None:
            return None
        try:
            machine = StateMachine.parse(text, name)
        except ValueError:
            return None
        machine.version = machine_version(text)
        return machine


def parse_retention(text: str, name: str) -> float:
    """The seconds ``text`` says to keep ``name``'s finished executions (0: forever).

    Raises:
        RetentionValueError: when ``text`` is not a finite number of seconds, 0 or more.
    """
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):  # NaN compares false with everything
        raise RetentionValueError(
            f"the retention of {name} must be 0 (keep its finished executions forever) or a number of"
            f" seconds to keep them after they stop, not {text!r}"
        )
    return seconds


def machine_retentions(redis_client: redis.Redis, keys: Keys) -> dict[str, float]:
    """Each machine's own retention in seconds (0: forever); machines with none are absent.

    A value someone wrote into the hash by hand that is not a valid retention is logged and
    skipped, so that machine keeps the default rather than stopping every sweep.
    """
    retentions = {}
    for raw_name, raw_seconds in redis_client.hgetall(keys.machine_retention).items():
        name = raw_name.decode() if isinstance(raw_name, bytes) else raw_name
        text = raw_seconds.decode() if isinstance(raw_seconds, bytes) else raw_seconds
        try:
            retentions[name] = parse_retention(text, name)
        except RetentionValueError as exc:
            log.warning("%s in %s; the default retention applies", exc, keys.machine_retention)
    return retentions


def set_machine_retention(redis_client: redis.Redis, keys: Keys, name: str, seconds: float | None) -> None:
    """Keep ``name``'s finished executions ``seconds`` after they stop (0: forever; None: the default).

    Raises:
        RetentionValueError: for a negative or non-finite ``seconds``, or when no machine is
            registered under ``name`` (clearing is allowed for any name, to tidy up after one).
    """
    if seconds is None:
        redis_client.hdel(keys.machine_retention, name)
        return
    parse_retention(repr(seconds), name)
    if not redis_client.hexists(keys.machines, name):
        raise RetentionValueError(
            f"no state machine is registered as {name!r}; register it before setting its retention"
        )
    redis_client.hset(keys.machine_retention, name, repr(seconds))
