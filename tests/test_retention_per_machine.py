"""Retention per state machine: ``redstep machines retention NAME SECONDS`` overrides the default.

Given machine A kept a short time, machine B kept the default (long), and executions of B that
stopped before A's, when the orchestrators sweep, then A's finished executions go on time and
B's stay; B set to 0 keeps them forever; clearing A's override (``--default``) brings A back to
the default. Values that cannot be a retention are refused by the real CLI, with nothing written.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
import redis

from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.loop import Orchestrator
from orchestrator.runtime.retention import Retention
from orchestrator.settings import Settings
from tests.retention_fixtures import HOUR, Clock
from tests.runtime_fixtures import drive

KEYS = Keys("t")
QUICK = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
ALSO_QUICK = {"StartAt": "Also", "States": {"Also": {"Type": "Pass", "End": True}}}


@pytest.fixture
def client(redis_client: redis.Redis, hour_retention: Settings, clock: Clock) -> Client:
    client = Client(redis_client, hour_retention, clock=clock)
    client.register_machine("A", QUICK)
    client.register_machine("B", ALSO_QUICK)
    return client


@pytest.fixture
def redstep(subprocess_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    env = {**subprocess_env, "REDSTEP_RETENTION_SECONDS": str(HOUR)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "producer.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    return run


def exists(client: Client, name: str) -> bool:
    return client.describe(name) is not None


def start(client: Client, machine: str, count: int) -> list[str]:
    return [client.start_execution(machine, {}, name=f"{machine}-{time.time_ns()}-{i}") for i in range(count)]


def sweep_until_short(retention: Retention) -> None:
    """Sweep as the orchestrator does while batches come back full, then once more."""
    for _ in range(100):
        retention.sweep(retention.clock())
        if not retention.more_waiting:
            return
    raise AssertionError("the sweep never caught up")


def test_an_orchestrator_sweeps_a_2s_machine_within_a_few_sweeps_and_keeps_the_default_one(
    redis_client: redis.Redis,
    hour_retention: Settings,
    redstep: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    client = Client(redis_client, hour_retention)
    client.register_machine("A", QUICK)
    client.register_machine("B", ALSO_QUICK)
    assert redstep("machines", "retention", "A", "2").returncode == 0
    kept = start(client, "B", 5)
    short = start(client, "A", 3)
    # Sweeping often, on Redis's clock, as a real orchestrator does.
    often = hour_retention.model_copy(update={"retention_sweep_interval_seconds": 0.1})
    orchestrator = Orchestrator(redis_client, often, "o1")

    drive(redis_client, often, [orchestrator], lambda c: not any(exists(c, n) for n in short), timeout=60)

    assert all(exists(client, name) for name in kept)
    assert {e["name"] for e in client.list_executions()} == set(kept)


def test_a_short_retention_is_honoured_behind_more_than_a_batch_of_older_executions_kept_longer(
    redis_client: redis.Redis, hour_retention: Settings, client: Client, clock: Clock
) -> None:
    client_retention = Retention(redis_client, hour_retention, clock=clock, batch=3)
    redis_client.hset(KEYS.machine_retention, "A", "2")
    kept = start(client, "B", 10)
    first = start(client, "A", 2)
    clock.offset = 10.0

    sweep_until_short(client_retention)
    assert not any(exists(client, name) for name in first)

    # The cursor is past B's entries: a later A execution goes in one sweep, though 10 of B are older.
    later = start(client, "A", 1)
    clock.offset = 20.0
    assert client_retention.sweep(clock()) == 1
    assert not exists(client, later[0])
    assert all(exists(client, name) for name in kept)


def test_a_machine_set_to_0_keeps_its_executions_forever(
    redis_client: redis.Redis,
    hour_retention: Settings,
    client: Client,
    clock: Clock,
    redstep: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    assert redstep("machines", "retention", "B", "0").returncode == 0
    forever = start(client, "B", 4)
    default = start(client, "A", 2)
    retention = Retention(redis_client, hour_retention, clock=clock, batch=2)
    clock.offset = 100 * 365 * 86_400.0

    sweep_until_short(retention)

    assert all(exists(client, name) for name in forever)
    assert not any(exists(client, name) for name in default)


def test_clearing_a_machines_retention_returns_it_to_the_default(
    redis_client: redis.Redis,
    hour_retention: Settings,
    client: Client,
    clock: Clock,
    redstep: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    assert redstep("machines", "retention", "A", "2").returncode == 0
    assert redstep("machines", "retention", "A", "--default").returncode == 0
    names = start(client, "A", 2)
    retention = Retention(redis_client, hour_retention, clock=clock)

    clock.offset = 60.0
    assert retention.sweep(clock()) == 0
    assert all(exists(client, name) for name in names)

    clock.offset = 2 * HOUR
    assert retention.sweep(clock()) == 2
    assert redis_client.hgetall(KEYS.machine_retention) == {}


def test_a_machine_moved_to_a_shorter_retention_is_swept_though_that_retention_already_passed_it(
    redis_client: redis.Redis, hour_retention: Settings, client: Client, clock: Clock
) -> None:
    redis_client.hset(KEYS.machine_retention, "A", "60")
    kept = start(client, "B", 3)
    retention = Retention(redis_client, hour_retention, clock=clock)
    clock.offset = 120.0
    assert retention.sweep(clock()) == 0  # the 60 s retention's cursor is now past B's entries

    redis_client.hset(KEYS.machine_retention, "B", "60")
    assert retention.sweep(clock()) == 3
    assert not any(exists(client, name) for name in kept)


def test_the_cli_shows_a_machines_retention_and_lists_every_machine_as_json(
    client: Client, redstep: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    assert redstep("machines", "retention", "A", "604800").returncode == 0

    shown = redstep("machines", "retention", "A")
    listed = redstep("machines", "retention", "--json")

    assert shown.returncode == 0
    assert shown.stdout == "A  604800s  (machine)\n"
    assert json.loads(listed.stdout) == [
        {"stateMachine": "A", "retentionSeconds": 604800.0, "source": "machine"},
        {"stateMachine": "B", "retentionSeconds": HOUR, "source": "default (REDSTEP_RETENTION_SECONDS)"},
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["A", "-5"], "the retention of A must be 0 (keep its finished executions forever)"),
        (["A", "nan"], "not 'nan'"),
        (["A", "inf"], "not 'inf'"),
        (["A", "a week"], "not 'a week'"),
        (["Nope", "60"], "no state machine is registered as 'Nope'"),
        (["A", "60", "--default"], "give SECONDS or --default, not both"),
    ],
)
def test_a_retention_that_cannot_be_kept_is_one_line_on_stderr_exit_2_and_nothing_written(
    redis_client: redis.Redis,
    client: Client,
    redstep: Callable[..., subprocess.CompletedProcess[str]],
    args: list[str],
    message: str,
) -> None:
    result = redstep("machines", "retention", *args)

    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""
    assert redis_client.hgetall(KEYS.machine_retention) == {}


def test_showing_the_retention_of_an_unknown_machine_exits_1(
    client: Client, redstep: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    result = redstep("machines", "retention", "Nope")

    assert result.returncode == 1
    assert result.stderr.strip() == "redstep machines retention: no state machine is registered as 'Nope'"
