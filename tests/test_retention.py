"""Retention: a finished execution disappears after ``retention_seconds``, as on AWS after 90 days.

Given executions that finished, still run, or were redriven, when the orchestrators' clock
passes the retention and they sweep, then only the executions that stopped longer ago than
the retention leave ListExecutions, DescribeExecution and GetExecutionHistory. The clock is
moved instead of waited for.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pydantic
import pytest
import redis

from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import STATUSES, Keys
from orchestrator.runtime.loop import Orchestrator
from orchestrator.runtime.retention import SWEEP_BATCH, Retention
from orchestrator.settings import Settings
from tests.retention_fixtures import HOUR, Clock
from tests.runtime_fixtures import drive, one_task_machine

KEYS = Keys("t")

QUICK = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
BROKEN = {"StartAt": "Boom", "States": {"Boom": {"Type": "Fail", "Error": "Broken", "Cause": "on purpose"}}}
WAITING = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 30 * 86_400, "End": True}}}


@pytest.fixture
def client(redis_client: redis.Redis, hour_retention: Settings) -> Client:
    client = Client(redis_client, hour_retention)
    client.register_machine("Quick", QUICK)
    client.register_machine("Broken", BROKEN)
    client.register_machine("Waiting", WAITING)
    client.register_machine("One", one_task_machine())
    return client


def listed(client: Client) -> set[str]:
    return {e["name"] for e in client.list_executions()}


def gone(client: Client, name: str) -> bool:
    return client.describe(name) is None and client.history(name) == [] and name not in listed(client)


def ended(name: str) -> Callable[[Client], bool]:
    return lambda client: (client.describe(name) or {}).get("status") not in (None, "RUNNING")


def test_the_commit_that_finishes_an_execution_records_its_stop_time_in_the_closed_index(
    redis_client: redis.Redis, client: Client
) -> None:
    done = client.start_execution("Quick", {}, name="done")
    running = client.start_execution("Waiting", {}, name="running")

    assert redis_client.zscore(KEYS.closed, done) == client.describe(done)["stopDate"]
    assert redis_client.zscore(KEYS.closed, running) is None


def test_executions_that_stopped_longer_ago_than_the_retention_disappear_and_the_others_stay(
    redis_client: redis.Redis, hour_retention: Settings, client: Client, clock: Clock
) -> None:
    old_success = client.start_execution("Quick", {}, name="old-success")
    old_failure = client.start_execution("Broken", {}, name="old-failure")
    running = client.start_execution("Waiting", {}, name="running")
    recent = client.start_execution("One", {"dragon_name_str": "Puff"}, name="recent")
    orchestrator = Orchestrator(redis_client, hour_retention, "o1", clock=clock)

    # Two hours on, the orchestrator sweeps in its first iteration and runs "recent" to its end.
    clock.offset = 2 * HOUR
    drive(redis_client, hour_retention, [orchestrator], ended(recent))

    assert gone(client, old_success)
    assert gone(client, old_failure)
    assert orchestrator.retention.sweep(clock()) == 0
    assert listed(client) == {running, recent}
    assert client.describe(running)["status"] == "RUNNING"
    assert client.describe(recent)["status"] == "SUCCEEDED"
    assert client.history(recent)[-1]["type"] == "ExecutionSucceeded"
    assert client.status()["executions"] == {
        "RUNNING": 1,
        "SUCCEEDED": 1,
        "FAILED": 0,
        "TIMED_OUT": 0,
        "ABORTED": 0,
    }
    kept = {running, recent}
    assert {k.decode() for k in redis_client.keys("t:exec:*")} == {KEYS.execution(n) for n in kept}
    assert {k.decode() for k in redis_client.keys("t:history:*")} == {KEYS.history(n) for n in kept}
    assert redis_client.zrange(KEYS.closed, 0, -1) == [recent.encode()]


def test_a_redriven_execution_leaves_the_closed_index_and_is_not_swept_while_it_runs_again(
    redis_client: redis.Redis, hour_retention: Settings, client: Client, clock: Clock
) -> None:
    name = client.start_execution("Waiting", {"n": 1}, name="redriven")
    orchestrator = Orchestrator(redis_client, hour_retention, "o1", clock=clock)
    client.stop_execution(name, error="Stopped", cause="by the test")
    drive(redis_client, hour_retention, [orchestrator], ended(name), with_worker=False)
    assert client.describe(name)["status"] == "ABORTED"
    assert redis_client.zscore(KEYS.closed, name) is not None

    client.redrive(name)
    assert redis_client.zscore(KEYS.closed, name) is None

    clock.offset = 2 * HOUR
    assert orchestrator.retention.sweep(clock()) == 0
    assert client.describe(name)["status"] == "RUNNING"
    assert client.history(name)[-1]["type"] == "WaitStateEntered"
    assert name in listed(client)


def test_the_sweep_leaves_whole_an_execution_that_runs_though_the_closed_index_still_names_it(
    redis_client: redis.Redis, hour_retention: Settings, client: Client
) -> None:
    name = client.start_execution("Waiting", {}, name="running")
    redis_client.zadd(KEYS.closed, {name: 1.0})

    assert Retention(redis_client, hour_retention).sweep(time.time()) == 0

    assert client.describe(name)["status"] == "RUNNING"
    assert client.history(name) != []
    assert name in listed(client)
    assert redis_client.zcard(KEYS.closed) == 0  # it is recorded again when it finishes


def test_with_retention_0_finished_executions_are_kept_forever(
    redis_client: redis.Redis, settings: Settings, clock: Clock
) -> None:
    forever = settings.model_copy(update={"retention_seconds": 0})
    client = Client(redis_client, forever)
    client.register_machine("Quick", QUICK)
    name = client.start_execution("Quick", {}, name="kept")
    orchestrator = Orchestrator(redis_client, forever, "o1", clock=clock)

    clock.offset = 100 * 365 * 86_400.0
    orchestrator.run_once()

    assert orchestrator.retention.sweep_if_due() == 0
    assert client.describe(name)["status"] == "SUCCEEDED"
    assert listed(client) == {name}
    # Still recorded, so turning retention on later applies to it as well.
    assert redis_client.zscore(KEYS.closed, name) is not None


def test_the_default_retention_is_90_days_swept_every_minute_500_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REDSTEP_RETENTION_SECONDS", raising=False)
    monkeypatch.delenv("REDSTEP_RETENTION_SWEEP_INTERVAL_SECONDS", raising=False)
    defaults = Settings()

    assert defaults.retention_seconds == 90 * 86_400
    assert defaults.retention_sweep_interval_seconds == 60
    assert SWEEP_BATCH == 500


def test_a_negative_retention_is_refused_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDSTEP_RETENTION_SECONDS", "-5")

    with pytest.raises(pydantic.ValidationError, match=r"REDSTEP_RETENTION_SECONDS must be 0 .* not -5"):
        Settings()


@pytest.mark.parametrize("interval", ["0", "-1"])
def test_a_sweep_interval_that_is_not_positive_is_refused(
    monkeypatch: pytest.MonkeyPatch, interval: str
) -> None:
    monkeypatch.setenv("REDSTEP_RETENTION_SWEEP_INTERVAL_SECONDS", interval)

    with pytest.raises(pydantic.ValidationError, match="retention_sweep_interval_seconds"):
        Settings()


def test_a_sweep_removes_at_most_its_batch_and_the_next_one_continues(
    redis_client: redis.Redis, hour_retention: Settings, client: Client
) -> None:
    names = [client.start_execution("Quick", {}, name=f"e{i}") for i in range(7)]
    retention = Retention(redis_client, hour_retention, batch=3)
    later = time.time() + 2 * HOUR

    assert [retention.sweep(later) for _ in range(4)] == [3, 3, 1, 0]

    assert all(gone(client, name) for name in names)
    for key in [KEYS.closed, KEYS.executions, *(KEYS.status(s) for s in STATUSES)]:
        assert redis_client.zcard(key) == 0


def test_sweeps_wait_an_interval_unless_the_last_batch_was_full(
    redis_client: redis.Redis, hour_retention: Settings, client: Client, clock: Clock
) -> None:
    for i in range(5):
        client.start_execution("Quick", {}, name=f"e{i}")
    retention = Retention(redis_client, hour_retention, clock=clock, batch=2)
    clock.offset = 2 * HOUR

    # Full batches mean a backlog: each call sweeps again until one comes back short.
    assert [retention.sweep_if_due() for _ in range(3)] == [2, 2, 1]
    client.start_execution("Quick", {}, name="next")  # past its retention on the moved clock
    assert retention.sweep_if_due() == 0  # the last batch was short: not before the interval

    clock.offset += hour_retention.retention_sweep_interval_seconds
    assert retention.sweep_if_due() == 1


def test_a_sweep_redis_refuses_is_logged_and_tried_again_an_interval_later(
    redis_client: redis.Redis, hour_retention: Settings, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    redis_client.set(KEYS.closed, "not a zset")
    retention = Retention(redis_client, hour_retention, clock=clock)

    assert retention.sweep_if_due() == 0
    assert "the retention sweep failed" in caplog.text

    caplog.clear()
    assert retention.sweep_if_due() == 0
    assert caplog.text == ""  # not again before the interval
