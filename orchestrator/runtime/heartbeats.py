"""Which orchestrators are alive, from an index they keep themselves (no SCAN).

Each orchestrator sets ``{p}:heartbeat:<consumer>`` with a TTL and adds its name to
``{p}:orchestrators`` in the same pipeline, every loop. A reader takes the set's members and
reads their heartbeat keys in one round trip; a name whose key expired is a dead orchestrator
and is skipped. The orchestrators remove such names now and then, so the set stays as small
as the number of orchestrators that ran lately; a name removed in the moment its owner beats
again is added back by its next beat.
"""

from __future__ import annotations

import redis

from orchestrator.protocol.decoding import lossless_text
from orchestrator.runtime.keys import Keys


def beat(pipe: redis.client.Pipeline, keys: Keys, consumer: str, now: float, ttl_seconds: int) -> None:
    """Queue ``consumer``'s heartbeat and its entry in the index on ``pipe``."""
    pipe.set(keys.heartbeat(consumer), repr(now), ex=ttl_seconds)
    pipe.sadd(keys.orchestrators, consumer)


def alive_and_dead(redis_client: redis.Redis, keys: Keys) -> tuple[list[str], list[str]]:
    """The indexed consumers whose heartbeat has not expired, and those whose heartbeat has."""
    names = sorted(lossless_text(name) for name in redis_client.smembers(keys.orchestrators))
    if not names:
        return [], []
    beats = redis_client.mget([keys.heartbeat(name) for name in names])
    alive = [name for name, value in zip(names, beats, strict=True) if value is not None]
    dead = [name for name, value in zip(names, beats, strict=True) if value is None]
    return alive, dead


def alive(redis_client: redis.Redis, keys: Keys) -> list[str]:
    """The consumers whose heartbeat has not expired, sorted."""
    return alive_and_dead(redis_client, keys)[0]


def forget_dead(redis_client: redis.Redis, keys: Keys) -> int:
    """Remove from the index the consumers whose heartbeat expired; returns how many."""
    dead = alive_and_dead(redis_client, keys)[1]
    if dead:
        redis_client.srem(keys.orchestrators, *dead)
    return len(dead)
