"""Which orchestrators are alive comes from the set they keep, not from a SCAN of key names."""

from __future__ import annotations

import redis

from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.loop import Orchestrator
from orchestrator.settings import Settings


def test_a_beating_orchestrator_is_listed_and_one_whose_heartbeat_expired_is_not_and_is_forgotten(
    redis_client: redis.Redis, settings: Settings
) -> None:
    keys = Keys(settings.prefix)
    first = Orchestrator(redis_client, settings, "o1", forget_dead_every_seconds=0)
    second = Orchestrator(redis_client, settings, "o2")
    first.run_once()
    second.run_once()
    assert Client(redis_client, settings).orchestrators() == ["o1", "o2"]
    assert Client(redis_client, settings).healthy()[0]

    # o2 dies: its heartbeat key expires (deleting it is what the TTL does, without the wait).
    redis_client.delete(keys.heartbeat("o2"))

    assert Client(redis_client, settings).orchestrators() == ["o1"]
    first.run_once()  # each iteration may forget the dead; with no interval, this one does
    assert redis_client.smembers(keys.orchestrators) == {b"o1"}


def test_no_orchestrator_alive_fails_the_health_check(redis_client: redis.Redis, settings: Settings) -> None:
    orchestrator = Orchestrator(redis_client, settings, "o1")
    orchestrator.run_once()
    redis_client.delete(Keys(settings.prefix).heartbeat("o1"))

    client = Client(redis_client, settings)
    assert client.orchestrators() == []
    assert client.healthy() == (False, "no orchestrator has sent a heartbeat recently")
