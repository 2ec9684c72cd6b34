"""runtime.activities on a real Redis: a task read by a poll that died is handed to the next one."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis

from orchestrator.runtime import callbacks
from orchestrator.runtime.activities import POLLERS, Activities, ActivityDeleted, TaskPoller
from orchestrator.runtime.client import Client
from orchestrator.runtime.doctor import check
from orchestrator.runtime.queues import Queues
from orchestrator.settings import Settings

ACTIVITY_ARN = "arn:aws:states:us-east-1:000000000000:activity:greeter"


def start_waiting_execution(redis_client: redis.Redis, settings: Settings) -> str:
    client = Client(redis_client, settings)
    Activities(redis_client, client.keys).create("greeter", 1.0)
    task = {"Type": "Task", "Resource": ACTIVITY_ARN, "End": True}
    client.register_machine("Greeting", json.dumps({"StartAt": "Work", "States": {"Work": task}}))
    return client.start_execution("Greeting", {"name": "Ada"}, "greet-ada")


def test_a_task_read_by_a_poll_that_died_before_handing_it_over_goes_to_the_next_poll(
    redis_client: redis.Redis, settings: Settings
) -> None:
    name = start_waiting_execution(redis_client, settings)
    stream = f"{settings.prefix}:activity:greeter"
    # A serve process reads the entry into the group and dies before acknowledging it.
    assert redis_client.xreadgroup(POLLERS, "dead-serve", {stream: ">"}, count=1)

    nothing_new = asyncio.run(TaskPoller(settings).take("greeter", wait_seconds=0.2))
    assert nothing_new is None  # within the reclaim delay the dead reader still holds it
    task = asyncio.run(TaskPoller(settings, reclaim_idle_seconds=0).take("greeter", wait_seconds=5))

    assert task is not None and (task.execution, task.input) == (name, {"name": "Ada"})
    callbacks.send_task_success(redis_client, settings, task.token, {"ok": True})  # still awaited
    assert redis_client.xlen(stream) == 0  # handed over once, then gone


def test_handing_a_task_over_tells_the_orchestrators_which_worker_started_it(
    redis_client: redis.Redis, settings: Settings
) -> None:
    name = start_waiting_execution(redis_client, settings)
    events = f"{settings.prefix}:events"
    before = redis_client.xlen(events)

    task = asyncio.run(TaskPoller(settings).take("greeter", wait_seconds=5, worker_name="host-1/pid-9"))

    assert task is not None
    ((_, fields),) = redis_client.xrange(events)[before:]
    started = json.loads(fields[b"event"])
    plain = callbacks.unseal(
        callbacks.token_key(redis_client, Client(redis_client, settings).keys), task.token
    )
    assert started == {
        "type": "ActivityStarted",
        "execution": name,
        "token": plain,
        "workerName": "host-1/pid-9",
    }


def test_a_task_two_polls_both_hold_is_handed_to_one_only(
    redis_client: redis.Redis, settings: Settings
) -> None:
    start_waiting_execution(redis_client, settings)
    stream = f"{settings.prefix}:activity:greeter"
    ((_, ((entry_id, fields),)),) = redis_client.xreadgroup(POLLERS, "slow-serve", {stream: ">"}, count=1)
    events = f"{settings.prefix}:events"
    before = redis_client.xlen(events)

    async def both_hand_over() -> list[object]:
        first, second = TaskPoller(settings), TaskPoller(settings)
        return [
            await first._hand_over(stream, entry_id, fields, "first"),
            await second._hand_over(stream, entry_id, fields, "second"),
        ]

    handed = asyncio.run(both_hand_over())
    assert handed[0] is not None and handed[1] is None
    assert redis_client.xlen(events) == before + 1  # one ActivityStarted, the first worker's


def test_a_task_whose_execution_no_longer_waits_is_skipped(
    redis_client: redis.Redis, settings: Settings
) -> None:
    name = start_waiting_execution(redis_client, settings)
    stored = json.loads(redis_client.hget(f"{settings.prefix}:exec:{{{name}}}", "execution"))
    stored["tokens"] = {}  # as after a timeout or a stop
    redis_client.hset(f"{settings.prefix}:exec:{{{name}}}", "execution", json.dumps(stored))

    assert asyncio.run(TaskPoller(settings).take("greeter", wait_seconds=0.5)) is None


def test_a_sealed_token_of_an_execution_that_is_gone_is_task_does_not_exist(
    redis_client: redis.Redis, settings: Settings
) -> None:
    keys = Client(redis_client, settings).keys
    sealed = callbacks.seal(callbacks.token_key(redis_client, keys), "gone:4")

    with pytest.raises(callbacks.TaskDoesNotExist):
        callbacks.send_task_heartbeat(redis_client, settings, sealed, sealed_only=True)
    with pytest.raises(callbacks.InvalidToken):
        callbacks.send_task_heartbeat(redis_client, settings, "gone:4", sealed_only=True)
    assert callbacks.unseal(callbacks.token_key(redis_client, keys), sealed) == "gone:4"


def test_a_callback_token_leaves_in_a_message_sealed_even_inside_a_longer_string(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client = Client(redis_client, settings)
    ask = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {
            "QueueUrl": "https://sqs.us-east-1.amazonaws.com/000000000000/approvals",
            "MessageBody": {
                "token.$": "$$.Task.Token",
                "text.$": "States.Format('answer {} please', $$.Task.Token)",
            },
        },
        "End": True,
    }
    client.register_machine("Approval", json.dumps({"StartAt": "Ask", "States": {"Ask": ask}}))
    Queues(redis_client, settings).create("approvals", {})
    name = client.start_execution("Approval", {}, "approve-1")

    ((_, fields),) = redis_client.xrange(f"{settings.prefix}:queue:approvals")
    body = json.loads(fields[b"body"])
    token = body["token"]
    assert ":" not in token and name not in token
    assert body["text"] == f"answer {token} please"
    callbacks.send_task_success(redis_client, settings, token, {"approved": True}, sealed_only=True)


def test_the_doctor_sees_an_activity_task_as_a_callback_wait_not_a_stuck_execution(
    redis_client: redis.Redis, settings: Settings
) -> None:
    name = start_waiting_execution(redis_client, settings)

    problems = check(redis_client, settings)

    assert [(p.subject, p.invariant, p.severity) for p in problems] == [
        (name, "callback-has-a-timeout", "warning")
    ]


def test_a_poll_waiting_on_an_activity_that_is_deleted_says_so(
    redis_client: redis.Redis, settings: Settings
) -> None:
    activities = Activities(redis_client, Client(redis_client, settings).keys)
    activities.create("short-lived", 1.0)

    async def poll_while_deleted() -> None:
        poll = asyncio.create_task(TaskPoller(settings).take("short-lived", wait_seconds=30))
        await asyncio.sleep(0.3)
        activities.delete("short-lived")
        await poll

    with pytest.raises(ActivityDeleted):
        asyncio.run(poll_while_deleted())
