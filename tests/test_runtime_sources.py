"""The source queue (SQS role) and its event-source mapping, on a real Redis."""

from __future__ import annotations

import json
import time

import redis

from orchestrator.runtime.keys import Keys
from orchestrator.runtime.sources import EventSourceMapping, send_messages
from orchestrator.settings import Settings
from tests.chaos import wait_until


def quick(settings: Settings, **overrides: object) -> Settings:
    knobs = {"visibility_timeout_seconds": 0.2, "max_receive_count": 2, "batch_size": 10, **overrides}
    return settings.model_copy(update=knobs)


def test_messages_build_up_while_nothing_consumes(redis_client: redis.Redis, settings: Settings) -> None:
    ids = send_messages(redis_client, settings, "dragons", [{"n": i} for i in range(7)])

    assert len(ids) == 7
    assert redis_client.xlen(Keys("t").queue("dragons")) == 7
    mapping = EventSourceMapping(redis_client, quick(settings), "o1")
    assert [m.body for m in mapping.poll()] == [{"n": i} for i in range(7)]
    assert [m.name for m in mapping.poll()] == []


def test_batch_size_limits_one_pull(redis_client: redis.Redis, settings: Settings) -> None:
    send_messages(redis_client, settings, "dragons", [{"n": i} for i in range(25)])
    mapping = EventSourceMapping(redis_client, quick(settings), "o1")

    assert [len(mapping.poll()) for _ in range(4)] == [10, 10, 5, 0]


def test_batching_window_holds_a_partial_batch_until_it_closes(
    redis_client: redis.Redis, settings: Settings
) -> None:
    now = [1000.0]
    mapping = EventSourceMapping(
        redis_client, quick(settings, batching_window_seconds=5.0, visibility_timeout_seconds=30), "o1",
        clock=lambda: now[0],
    )  # fmt: skip
    send_messages(redis_client, settings, "dragons", [{"n": 1}])

    assert mapping.poll() == []
    now[0] += 5.0
    assert [m.body for m in mapping.poll()] == [{"n": 1}]


def test_unacknowledged_message_is_delivered_again_after_the_visibility_timeout(
    redis_client: redis.Redis, settings: Settings
) -> None:
    (message_id,) = send_messages(redis_client, settings, "dragons", [{"n": 1}])
    # A second long: the check that it is still invisible holds on a busy machine too.
    slow = quick(settings, visibility_timeout_seconds=1.0)
    first = EventSourceMapping(redis_client, slow, "o1")
    second = EventSourceMapping(redis_client, slow, "o2")
    (pulled,) = first.poll()
    assert pulled.name == message_id

    assert second.poll() == []  # still invisible
    again: list = []
    wait_until(lambda: bool(again.extend(second.poll()) or again), 30, "the message to be delivered again")

    assert [(m.entry_id, m.name, m.receive_count) for m in again] == [(pulled.entry_id, message_id, 2)]


def test_message_received_max_receive_count_times_moves_to_the_dead_letter_queue(
    redis_client: redis.Redis, settings: Settings
) -> None:
    (message_id,) = send_messages(redis_client, settings, "dragons", [{"n": 1}])
    mapping = EventSourceMapping(redis_client, quick(settings, max_receive_count=2), "o1")
    received = []
    for _ in range(3):
        received += mapping.poll()
        time.sleep(0.3)
    received += mapping.poll()

    assert len(received) == 2
    keys = Keys("t")
    assert redis_client.xlen(keys.queue("dragons")) == 0
    ((_, letter),) = redis_client.xrange(keys.dead_letters("dragons"))
    assert letter[b"message_id"].decode() == message_id
    assert letter[b"receive_count"] == b"2"
    assert b"maxReceiveCount 2 exceeded" in letter[b"reason"]
    assert json.loads(letter[b"body"]) == {"n": 1}
    assert redis_client.xpending(keys.queue("dragons"), "orchestrators")["pending"] == 0


def test_message_that_is_not_json_is_moved_aside(redis_client: redis.Redis, settings: Settings) -> None:
    keys = Keys("t")
    redis_client.xadd(keys.queue("dragons"), {"body": "{not json"})
    redis_client.xadd(keys.queue("dragons"), {"other": "x"})
    redis_client.xadd(keys.queue("dragons"), {"body": '{"weight": NaN}'})  # Python reads it; JSON has no NaN
    mapping = EventSourceMapping(redis_client, quick(settings), "o1")

    assert mapping.poll() == []
    reasons = [fields[b"reason"].decode() for _, fields in redis_client.xrange(keys.malformed)]
    assert reasons == [
        "body is not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        "no 'body' field",
        "body is not JSON: NaN is not a JSON value",
    ]
    assert redis_client.xlen(keys.queue("dragons")) == 0
