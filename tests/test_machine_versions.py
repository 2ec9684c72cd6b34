"""An execution runs to its end on the definition it started with, as on AWS, on a real Redis."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis

from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.loop import Orchestrator
from orchestrator.settings import Settings
from tests.runtime_fixtures import all_finished, drive

KEYS = Keys("t")


def waits_then_says(word: str) -> dict[str, Any]:
    return {
        "StartAt": "Wait",
        "States": {
            "Wait": {"Type": "Wait", "Seconds": 60, "Next": "Say"},
            "Say": {"Type": "Pass", "Result": word, "End": True},
        },
    }


@pytest.fixture
def client(redis_client: redis.Redis, settings: Settings) -> Client:
    return Client(redis_client, settings)


def test_a_running_execution_keeps_its_definition_when_a_new_one_is_registered(
    redis_client: redis.Redis, settings: Settings, client: Client
) -> None:
    offset = [0.0]
    orchestrator = Orchestrator(redis_client, settings, "o1", clock=lambda: time.time() + offset[0])
    client.register_machine("Versioned", waits_then_says("first"))
    started_on_first = client.start_execution("Versioned", {})
    client.register_machine("Versioned", waits_then_says("second"))
    started_on_second = client.start_execution("Versioned", {})

    offset[0] = 61.0
    drive(redis_client, settings, [orchestrator], all_finished(2), with_worker=False)

    first, second = client.describe(started_on_first), client.describe(started_on_second)
    assert (first["output"], second["output"]) == ("first", "second")
    assert first["stateMachineVersion"] != second["stateMachineVersion"]
    kept = json.loads(redis_client.hget(KEYS.machine_versions, f"Versioned@{first['stateMachineVersion']}"))
    assert kept == waits_then_says("first")


def test_a_redrive_runs_on_the_definition_the_execution_started_with(
    redis_client: redis.Redis, settings: Settings, client: Client
) -> None:
    failing_first = {
        "StartAt": "Fail",
        "States": {"Fail": {"Type": "Fail", "Error": "Broken", "Cause": "the first version fails"}},
    }
    client.register_machine("Fixed", failing_first)
    name = client.start_execution("Fixed", {})
    assert client.describe(name)["status"] == "FAILED"
    client.register_machine("Fixed", {"StartAt": "Fail", "States": {"Fail": {"Type": "Succeed"}}})

    redriven = client.redrive(name)

    # AWS redrives on the same version too: fixing a definition means starting anew.
    assert redriven["status"] == "FAILED"
    assert client.start_execution("Fixed", {}, name="anew") == "anew"
    assert client.describe("anew")["status"] == "SUCCEEDED"


def test_every_registered_definition_is_kept_once(redis_client: redis.Redis, client: Client) -> None:
    client.register_machine("Kept", waits_then_says("first"))
    client.register_machine("Kept", waits_then_says("second"))
    client.register_machine("Kept", waits_then_says("first"))

    kept = {json.loads(text)["States"]["Say"]["Result"] for text in redis_client.hvals(KEYS.machine_versions)}
    assert kept == {"first", "second"}
    assert json.loads(redis_client.hget(KEYS.machines, "Kept"))["States"]["Say"]["Result"] == "first"


def test_an_execution_from_before_versions_were_kept_runs_on_the_current_definition(
    redis_client: redis.Redis, settings: Settings, client: Client
) -> None:
    offset = [0.0]
    orchestrator = Orchestrator(redis_client, settings, "o1", clock=lambda: time.time() + offset[0])
    client.register_machine("Old", waits_then_says("current"))
    name = client.start_execution("Old", {})
    execution = json.loads(redis_client.hget(KEYS.execution(name), "execution"))
    del execution["machineVersion"]
    redis_client.hset(KEYS.execution(name), "execution", json.dumps(execution))

    offset[0] = 61.0
    drive(redis_client, settings, [orchestrator], all_finished(1), with_worker=False)

    assert client.describe(name)["output"] == "current"
