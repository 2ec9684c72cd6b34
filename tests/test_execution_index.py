"""Each machine's own execution index: kept by the commits, taken in once for older executions."""

from __future__ import annotations

import time

import redis

from orchestrator.dashboard.reads import executions_page
from orchestrator.runtime import execution_index
from orchestrator.runtime.client import Client
from orchestrator.runtime.loop import Orchestrator
from orchestrator.runtime.retention import Retention
from orchestrator.settings import Settings
from tests.chaos import wait_until
from tests.retention_fixtures import HOUR
from tests.runtime_fixtures import dragon, drive, one_task_machine

PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
WAIT = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": True}}}


def members(redis_client: redis.Redis, key: str) -> list[str]:
    """The index's names, newest first."""
    return [member.decode() for member in redis_client.zrevrange(key, 0, -1)]


def test_a_start_and_every_status_change_keep_the_machines_own_index(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client = Client(redis_client, settings)
    client.register_machine("Rare", one_task_machine())
    client.register_machine("Common", PASS)
    for i in range(20):
        client.start_execution("Common", {}, f"common-{i}")
    client.start_execution("Rare", dragon("Smaug"), "rare-1")
    keys = client.keys
    assert members(redis_client, execution_index.all_key(keys, "Rare")) == ["rare-1"]
    assert members(redis_client, execution_index.status_key(keys, "Rare", "RUNNING")) == ["rare-1"]
    assert len(members(redis_client, execution_index.status_key(keys, "Common", "SUCCEEDED"))) == 20

    orchestrator = Orchestrator(redis_client, settings, "o1")
    drive(redis_client, settings, [orchestrator], lambda c: c.describe("rare-1")["status"] != "RUNNING")
    final = client.describe("rare-1")["status"]
    assert members(redis_client, execution_index.status_key(keys, "Rare", "RUNNING")) == []
    assert members(redis_client, execution_index.status_key(keys, "Rare", final)) == ["rare-1"]
    assert members(redis_client, execution_index.all_key(keys, "Rare")) == ["rare-1"]


def test_executions_stored_before_the_index_are_taken_in_once_then_listed_from_it(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client = Client(redis_client, settings)
    keys = client.keys
    client.register_machine("Rare", WAIT)
    client.register_machine("Common", PASS)
    for i in range(1500):  # more than one rebuild batch
        if i % 500 == 0:
            client.start_execution("Rare", {}, f"rare-{i}")
        client.start_execution("Common", {}, f"common-{i}")
    # As stored before the per-machine indexes existed: only the global index knows them.
    for machine in ("Rare", "Common"):
        redis_client.delete(execution_index.all_key(keys, machine))
        for status in ("RUNNING", "SUCCEEDED"):
            redis_client.delete(execution_index.status_key(keys, machine, status))
    redis_client.delete(execution_index.built_key(keys))

    assert execution_index.is_built(redis_client, keys, background=False)
    assert redis_client.exists(execution_index.built_key(keys))
    newest = execution_index.newest(redis_client, keys, "Rare", None, None, 10)
    assert [name for name, _ in newest] == ["rare-1000", "rare-500", "rare-0"]
    running = execution_index.newest(redis_client, keys, "Rare", "RUNNING", None, 10)
    assert [name for name, _ in running] == ["rare-1000", "rare-500", "rare-0"]
    assert execution_index.newest(redis_client, keys, "Rare", "SUCCEEDED", None, 10) == []
    assert redis_client.zcard(execution_index.all_key(keys, "Common")) == 1500

    # A page of two, then the rest from its cursor, as ListExecutions pages.
    first = execution_index.newest(redis_client, keys, "Rare", None, None, 2)
    last_name, last_score = first[-1]
    rest = execution_index.newest(redis_client, keys, "Rare", None, (last_score, last_name), 10)
    assert [name for name, _ in first + rest] == ["rare-1000", "rare-500", "rare-0"]


def test_the_dashboards_list_of_one_machine_reads_its_index_and_skips_stale_entries(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client = Client(redis_client, settings)
    keys = client.keys
    client.register_machine("Rare", PASS)
    client.register_machine("Common", PASS)
    for i in range(50):
        client.start_execution("Common", {}, f"common-{i}")
    client.start_execution("Rare", {}, "rare-done")
    # An entry a status change left behind (as a rebuild racing a commit can leave one).
    redis_client.zadd(execution_index.status_key(keys, "Rare", "RUNNING"), {"rare-done": 1.0})
    assert execution_index.is_built(redis_client, keys, background=False)

    page = executions_page(client, machine="Rare")
    assert [row["name"] for row in page.rows] == ["rare-done"]
    assert executions_page(client, machine="Rare", status="RUNNING").rows == []
    assert [row["name"] for row in executions_page(client, machine="Rare", status="SUCCEEDED").rows] == [
        "rare-done"
    ]


def test_while_another_reader_rebuilds_readers_use_the_global_index_and_leave_its_lock(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client = Client(redis_client, settings)
    keys = client.keys
    client.register_machine("Rare", PASS)
    client.start_execution("Rare", {}, "rare-1")
    redis_client.delete(execution_index.built_key(keys))
    redis_client.set(execution_index.building_key(keys), "another reader")

    assert not execution_index.is_built(redis_client, keys, background=False)
    assert not execution_index.is_built(redis_client, keys, background=False)
    assert redis_client.get(execution_index.building_key(keys)) == b"another reader"
    assert [row["name"] for row in executions_page(client, machine="Rare").rows] == ["rare-1"]

    redis_client.delete(execution_index.building_key(keys))
    assert execution_index.is_built(redis_client, keys, background=False)
    assert not redis_client.exists(execution_index.building_key(keys))


def test_the_retention_sweep_takes_an_execution_out_of_its_machines_index(
    redis_client: redis.Redis, hour_retention: Settings
) -> None:
    client = Client(redis_client, hour_retention)
    keys = client.keys
    client.register_machine("Quick", PASS)
    client.register_machine("Waiting", WAIT)
    for i in range(3):
        client.start_execution("Quick", {}, f"quick-{i}")
    client.start_execution("Waiting", {}, "waiting")
    redis_client.set(execution_index.status_key(keys, "Quick", "FAILED"), "not an index")

    origins = f"{keys.prefix}:sfn-execution-origins"
    redis_client.hset(origins, mapping={"quick-0": "{}", "waiting": "{}"})

    assert Retention(redis_client, hour_retention).sweep(time.time() + 2 * HOUR) == 3

    assert redis_client.hkeys(origins) == [b"waiting"]

    assert redis_client.zcard(execution_index.all_key(keys, "Quick")) == 0
    assert redis_client.zcard(execution_index.status_key(keys, "Quick", "SUCCEEDED")) == 0
    assert members(redis_client, execution_index.all_key(keys, "Waiting")) == ["waiting"]
    assert members(redis_client, execution_index.status_key(keys, "Waiting", "RUNNING")) == ["waiting"]


def test_a_reader_rebuilds_in_the_background_and_reads_the_global_index_meanwhile(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client = Client(redis_client, settings)
    keys = client.keys
    client.register_machine("Rare", PASS)
    client.start_execution("Rare", {}, "rare-1")
    redis_client.delete(execution_index.built_key(keys), execution_index.all_key(keys, "Rare"))

    assert not execution_index.is_built(redis_client, keys)
    # The thread marks the indexes built, then releases its marker: wait for both, not the first.
    wait_until(
        lambda: (
            bool(redis_client.exists(execution_index.built_key(keys)))
            and not redis_client.exists(execution_index.building_key(keys))
        ),
        60.0,
        "the rebuild to finish and release its marker",
    )
    assert members(redis_client, execution_index.all_key(keys, "Rare")) == ["rare-1"]
