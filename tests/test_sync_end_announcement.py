"""The end of an execution started for StartSyncExecution or TestState is announced on
``{p}:ended:{<name>}``; when nobody reads it (the caller hung up, or its wait ran out) the
announcement expires instead of staying in Redis for good."""

from __future__ import annotations

import asyncio

import redis

from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.loop import Orchestrator
from orchestrator.runtime.sync_executions import EndWaiter
from orchestrator.runtime.transitions import ENDED_KEEP_SECONDS
from orchestrator.settings import Settings
from tests.runtime_fixtures import drive

PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
WAIT = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": True}}}


def _kept_for(redis_client: redis.Redis, key: str) -> int:
    """The key's time to live in seconds (-1: kept for good, -2: gone)."""
    return int(redis_client.ttl(key))


def test_an_end_announced_at_the_start_expires_when_nobody_reads_it(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client = Client(redis_client, settings)
    client.register_machine("Passes", PASS)

    assert client.start_new_execution("Passes", {}, "unread", notify_end=True)

    ended = Keys(settings.prefix).execution_ended("unread")
    assert redis_client.xlen(ended) == 1
    assert 0 < _kept_for(redis_client, ended) <= ENDED_KEEP_SECONDS


def test_a_waiter_that_hangs_up_leaves_no_announcement_for_good(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client = Client(redis_client, settings)
    client.register_machine("Waits", WAIT)
    assert client.start_new_execution("Waits", {}, "abandoned", notify_end=True)

    async def hang_up() -> None:
        # As the API does when its caller goes away mid-request: the wait is cancelled.
        waiting = asyncio.ensure_future(EndWaiter(settings).ended("abandoned", 3600))
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)

    asyncio.run(hang_up())
    # The execution ends later, with nobody waiting any more.
    client.stop_execution("abandoned", "Stopped", "its caller hung up")
    orchestrator = Orchestrator(redis_client, settings, "o1")
    drive(
        redis_client,
        settings,
        [orchestrator],
        lambda c: c.describe("abandoned")["status"] == "ABORTED",
        with_worker=False,
    )

    ended = Keys(settings.prefix).execution_ended("abandoned")
    assert redis_client.xlen(ended) == 1
    assert 0 < _kept_for(redis_client, ended) <= ENDED_KEEP_SECONDS


def test_a_waiter_still_there_reads_the_end_and_removes_it(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client = Client(redis_client, settings)
    client.register_machine("Passes", PASS)
    assert client.start_new_execution("Passes", {}, "read", notify_end=True)

    assert asyncio.run(EndWaiter(settings).ended("read", 30))

    assert _kept_for(redis_client, Keys(settings.prefix).execution_ended("read")) == -2
