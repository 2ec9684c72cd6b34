"""A timer or a stop waits for the older events of its execution that another orchestrator holds.

A result that reached the event stream before its task's timeout is the task's, however late
it is taken (README, Limits): even when the orchestrator that read it died before committing
it, and the timeout fired while its entry waited to be claimed. Likewise a child whose start a
dead orchestrator held is stopped when its parent is, not left running.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis

from orchestrator.runtime.client import Client
from orchestrator.runtime.event_order import RECHECK_SECONDS, STALE_SECONDS
from orchestrator.runtime.keys import GROUP, Keys
from orchestrator.runtime.loop import Orchestrator
from orchestrator.settings import Settings
from tests.runtime_fixtures import LAMBDA, queued_tasks

KEYS = Keys("t")
TIMED_TASK = {
    "StartAt": "Call",
    "States": {"Call": {"Type": "Task", "Resource": LAMBDA + "Slow", "TimeoutSeconds": 1, "End": True}},
}
WAIT = {"StartAt": "Pause", "States": {"Pause": {"Type": "Wait", "Seconds": 1, "End": True}}}
LONG_WAIT = {"StartAt": "Pause", "States": {"Pause": {"Type": "Wait", "Seconds": 3600, "End": True}}}
SYNC_PARENT = {
    "StartAt": "Start",
    "States": {
        "Start": {
            "Type": "Task",
            "Resource": "arn:aws:states:::states:startExecution.sync:2",
            "Parameters": {
                "StateMachineArn": "arn:aws:states:us-east-1:000000000000:stateMachine:Long",
                "Name": "kid",
            },
            "End": True,
        }
    },
}


@pytest.fixture
def client(redis_client: redis.Redis, settings: Settings) -> Client:
    return Client(redis_client, settings)


def later(seconds: float) -> Any:
    """A clock ``seconds`` ahead of now: the task's timeout has come due by it."""
    return lambda: time.time() + seconds


def result_read_by_a_dead_orchestrator(redis_client: redis.Redis, settings: Settings, client: Client) -> str:
    """An execution whose task's result reached the stream in time and was read by an
    orchestrator that never committed it; its name."""
    client.register_machine("Timed", TIMED_TASK)
    name = client.start_execution("Timed", {})
    (task,) = queued_tasks(redis_client, settings)
    report = {"type": "TaskSucceeded", "execution": name, "token": task["token"], "output": {"in": "time"}}
    redis_client.xadd(KEYS.events, {"event": json.dumps(report)})
    dead = Orchestrator(redis_client, settings, "dead")
    dead.intake.last_claim = time.time()
    assert len(dead.intake.read_events(None)) == 1
    time.sleep(STALE_SECONDS)  # it is not coming back: what it read goes stale
    return name


def pending_with(redis_client: redis.Redis, consumer: str) -> int:
    consumers = {
        row["name"].decode(): row["pending"] for row in redis_client.xinfo_consumers(KEYS.events, GROUP)
    }
    return int(consumers.get(consumer, 0))


def test_the_timeout_waits_while_a_dead_orchestrator_holds_the_result_then_the_result_wins(
    redis_client: redis.Redis, settings: Settings, client: Client
) -> None:
    name = result_read_by_a_dead_orchestrator(redis_client, settings, client)
    survivor = Orchestrator(redis_client, settings, "survivor", clock=later(5))
    survivor.intake.last_claim = time.time() + 5  # the dead one's entry is not claimed yet

    survivor.run_once()  # the timeout fires and is read, while the result still waits to be claimed

    assert client.describe(name)["status"] == "RUNNING"
    assert pending_with(redis_client, "survivor") == 1, "the timeout is held, unacknowledged"
    assert pending_with(redis_client, "dead") == 1

    survivor.intake.claim_idle_seconds = 0.001  # the dead one's entry is claimed now
    survivor.intake.last_claim = float("-inf")
    survivor.run_once()  # the claim: the result is applied
    time.sleep(RECHECK_SECONDS)
    survivor.run_once()  # the held timeout is judged again, and ignored: its task is done

    described = client.describe(name)
    assert (described["status"], described.get("output")) == ("SUCCEEDED", {"in": "time"})
    types = [event["type"] for event in client.history(name)]
    assert "LambdaFunctionSucceeded" in types and "LambdaFunctionTimedOut" not in types
    assert redis_client.xpending(KEYS.events, GROUP)["pending"] == 0
    assert redis_client.xlen(KEYS.events) == 0, "every consumed entry, the held timeout too, left the stream"


def test_a_claimed_result_is_applied_before_a_timeout_read_in_the_same_iteration(
    redis_client: redis.Redis, settings: Settings, client: Client
) -> None:
    name = result_read_by_a_dead_orchestrator(redis_client, settings, client)
    survivor = Orchestrator(redis_client, settings, "survivor", clock=later(5), claim_idle_seconds=0.001)

    survivor.run_once()  # fires and reads the timeout, and claims the older result, at once

    described = client.describe(name)
    assert (described["status"], described.get("output")) == ("SUCCEEDED", {"in": "time"})


def test_the_timers_of_other_executions_do_not_wait(
    redis_client: redis.Redis, settings: Settings, client: Client
) -> None:
    held = result_read_by_a_dead_orchestrator(redis_client, settings, client)
    client.register_machine("Pause", WAIT)
    waiting = client.start_execution("Pause", {"free": True})
    survivor = Orchestrator(redis_client, settings, "survivor", clock=later(5))
    survivor.intake.last_claim = time.time() + 5

    survivor.run_once()

    assert client.describe(waiting)["status"] == "SUCCEEDED"
    assert client.describe(held)["status"] == "RUNNING"


def test_a_child_whose_start_a_dead_orchestrator_held_is_stopped_with_its_parent(
    redis_client: redis.Redis, settings: Settings, client: Client
) -> None:
    client.register_machine("Long", LONG_WAIT)
    client.register_machine("Parent", SYNC_PARENT)
    parent = client.start_execution("Parent", {})
    dead = Orchestrator(redis_client, settings, "dead")
    dead.intake.last_claim = time.time()
    (start,) = dead.intake.read_events(None)  # the child's start: read, never committed
    assert start[1]["type"] == "StartExecution"
    time.sleep(STALE_SECONDS)  # it is not coming back: what it read goes stale
    survivor = Orchestrator(redis_client, settings, "survivor")
    survivor.intake.last_claim = time.time()

    client.stop_execution(parent, "Stopped", "by a person")
    survivor.run_once()  # the parent stops, and asks for its child to be stopped
    survivor.run_once()  # which waits: the child's start is older, and held elsewhere
    assert client.describe(parent)["status"] == "ABORTED"
    assert client.describe("kid") is None

    survivor.intake.claim_idle_seconds = 0.001
    survivor.intake.last_claim = float("-inf")
    survivor.run_once()  # the start is claimed: the child starts, and its parent's stop is judged again
    time.sleep(RECHECK_SECONDS)
    survivor.run_once()

    assert client.describe("kid")["status"] == "ABORTED"
    survivor.run_once()  # the child's end, reported to a parent that no longer waits for it
    assert redis_client.xlen(KEYS.events) == 0
