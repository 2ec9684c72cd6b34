"""``redstep_executions_running`` is exact: read at scrape time from each machine's index of
running executions, which the commit that moves an execution writes, rather than summed from
increments a process may not have counted (metrics off, or the counters reset, at its start)."""

from __future__ import annotations

import pytest
import redis

from orchestrator.metrics import counting, scrape
from orchestrator.protocol.metrics import metrics_key
from orchestrator.runtime import execution_index
from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.loop import Orchestrator
from orchestrator.settings import Settings
from tests.runtime_fixtures import drive

WAIT = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": True}}}


def _running(redis_client: redis.Redis, settings: Settings) -> dict[str, float]:
    """The gauge's samples of one scrape, by state machine."""
    families = scrape.families(scrape.read(redis_client, settings))
    gauge = next(family for family in families if family.name == "redstep_executions_running")
    return {sample.labels["state_machine"]: sample.value for sample in gauge.samples}


def _stop(redis_client: redis.Redis, settings: Settings, client: Client, names: list[str]) -> None:
    for name in names:
        client.stop_execution(name, "Stopped", "by the test")
    orchestrator = Orchestrator(redis_client, settings, "o1")
    drive(
        redis_client,
        settings,
        [orchestrator],
        lambda c: all(c.describe(name)["status"] == "ABORTED" for name in names),
        with_worker=False,
    )


def test_executions_started_uncounted_and_stopped_counted_leave_the_gauge_exact(
    redis_client: redis.Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    execution_index.rebuild(redis_client, Keys(settings.prefix))  # as the first listing does
    client = Client(redis_client, settings)
    client.register_machine("Waits", WAIT)
    # Given two executions started by a process that did not count (REDSTEP_METRICS=0)
    monkeypatch.setattr(counting, "ENABLED", False)
    for name in ("uncounted-1", "uncounted-2"):
        assert client.start_new_execution("Waits", {}, name)
    monkeypatch.setattr(counting, "ENABLED", True)
    assert client.start_new_execution("Waits", {}, "counted")

    # When a counting orchestrator stops the two uncounted ones
    _stop(redis_client, settings, client, ["uncounted-1", "uncounted-2"])

    # Then the counter went below zero, but the gauge shows the one execution that runs
    counter = redis_client.hget(metrics_key(settings.prefix), '["executions_running","Waits"]')
    assert int(counter or 0) == -1
    assert _running(redis_client, settings) == {"Waits": 1}


def test_counters_reset_while_executions_run_leave_the_gauge_exact(
    redis_client: redis.Redis, settings: Settings
) -> None:
    execution_index.rebuild(redis_client, Keys(settings.prefix))
    client = Client(redis_client, settings)
    client.register_machine("Waits", WAIT)
    for name in ("a", "b", "c"):
        assert client.start_new_execution("Waits", {}, name)
    redis_client.delete(metrics_key(settings.prefix))  # an operator resets the counters

    _stop(redis_client, settings, client, ["a"])

    assert _running(redis_client, settings) == {"Waits": 2}
    _stop(redis_client, settings, client, ["b", "c"])
    assert _running(redis_client, settings) == {"Waits": 0}
