"""Timers nobody waits for any more are taken back, on a real Redis.

A task's TimeoutSeconds, a heartbeat, an execution's TimeoutSeconds or a Wait in a branch
that was cut short each set a timer. When what it guarded ends first, the timer is removed
in the same commit, instead of staying in the timers set until it fires for nothing: with
hour-long timeouts and thousands of executions an hour, those would pile up.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from orchestrator.runtime.callbacks import send_task_heartbeat, send_task_success
from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.loop import Orchestrator
from orchestrator.settings import Settings
from tests.runtime_fixtures import all_finished, create_topic, drive

KEYS = Keys("t")
TOPIC = "arn:aws:sns:us-east-1:000000000000:approvals"


@pytest.fixture
def client(redis_client: redis.Redis, settings: Settings) -> Client:
    return Client(redis_client, settings)


def timers_of(redis_client: redis.Redis, name: str) -> list[dict[str, Any]]:
    events = [json.loads(member) for member in redis_client.zrange(KEYS.timers, 0, -1)]
    return [event for event in events if event.get("execution") == name]


def callback_token(redis_client: redis.Redis, name: str) -> str:
    execution = json.loads(redis_client.hget(KEYS.execution(name), "execution"))
    (token,) = [token for token, (_, kind) in execution["tokens"].items() if kind == "task"]
    return token


def test_a_callback_task_that_ends_early_leaves_no_timeout_or_heartbeat_timer(
    redis_client: redis.Redis, settings: Settings, client: Client
) -> None:
    client.register_machine(
        "Approval",
        {
            "StartAt": "Ask",
            "States": {
                "Ask": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::sns:publish.waitForTaskToken",
                    "Parameters": {"TopicArn": TOPIC, "Message.$": "$$.Task.Token"},
                    "TimeoutSeconds": 3600,
                    "HeartbeatSeconds": 600,
                    "End": True,
                }
            },
        },
    )
    create_topic(redis_client, settings, "approvals")
    orchestrator = Orchestrator(redis_client, settings, "o1")
    name = client.start_execution("Approval", {})
    token = callback_token(redis_client, name)
    assert len(timers_of(redis_client, name)) == 2  # the timeout and the first heartbeat

    for _ in range(3):
        send_task_heartbeat(redis_client, settings, token)
        orchestrator.run_once()
    assert len(timers_of(redis_client, name)) == 2  # each heartbeat replaced the one before

    send_task_success(redis_client, settings, token, {"approved": True})
    drive(redis_client, settings, [orchestrator], all_finished(1), with_worker=False)

    assert client.describe(name)["status"] == "SUCCEEDED"
    assert timers_of(redis_client, name) == []


def test_an_execution_that_ends_before_its_timeout_leaves_no_timer(
    redis_client: redis.Redis, client: Client
) -> None:
    client.register_machine(
        "Quick",
        {"TimeoutSeconds": 3600, "StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}},
    )
    name = client.start_execution("Quick", {})

    assert client.describe(name)["status"] == "SUCCEEDED"
    assert timers_of(redis_client, name) == []


def test_a_wait_in_a_branch_cut_short_by_its_sibling_failing_leaves_no_timer(
    redis_client: redis.Redis, settings: Settings, client: Client
) -> None:
    client.register_machine(
        "Cut",
        {
            "StartAt": "Both",
            "States": {
                "Both": {
                    "Type": "Parallel",
                    "Branches": [
                        {
                            "StartAt": "Long",
                            "States": {"Long": {"Type": "Wait", "Seconds": 3600, "End": True}},
                        },
                        {"StartAt": "Boom", "States": {"Boom": {"Type": "Fail", "Error": "Broken"}}},
                    ],
                    "End": True,
                }
            },
        },
    )
    name = client.start_execution("Cut", {})

    assert (client.describe(name)["status"], client.describe(name)["error"]) == ("FAILED", "Broken")
    assert timers_of(redis_client, name) == []
