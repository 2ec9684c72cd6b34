"""The one-script commit: a batch lands whole or not at all, and never twice."""

from __future__ import annotations

import json

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from orchestrator.runtime.keys import GROUP, Keys
from orchestrator.runtime.scripts import lua_script
from orchestrator.runtime.sources import ensure_group
from orchestrator.runtime.store import LONG_VALUE, CommitRefused, Store

KEYS = Keys("t")


def execution(name: str, status: str = "RUNNING") -> dict:
    return {"name": name, "status": status, "startDate": 100.0, "stateMachine": "M", "arn": "arn"}


def pending_entry(redis_client: redis.Redis) -> str:
    ensure_group(redis_client, KEYS.events)
    redis_client.xadd(KEYS.events, {"event": "{}"})
    ((_, [(entry_id, _)]),) = redis_client.xreadgroup(GROUP, "o1", {KEYS.events: ">"})
    return entry_id.decode()


def test_a_batch_writes_every_effect_and_acks_its_entry(redis_client: redis.Redis) -> None:
    store = Store(redis_client, KEYS)
    entry_id = pending_entry(redis_client)
    task = {
        "execution": "e1",
        "token": "e1:1",
        "function": "F",
        "function_arn": "arn",
        "payload": 1,
        "attempt": 0,
    }
    commit = store.new_commit()
    commit.expect_version("e1", 0)
    commit.expect_pending(KEYS.events, entry_id)
    commit.save_execution(execution("e1"), 1)
    commit.append_history("e1", [{"id": 1, "type": "ExecutionStarted"}])
    commit.index_status(execution("e1"), None)
    commit.add_timer(123.5, {"type": "TimerFired", "execution": "e1", "token": "e1:2"})
    commit.enqueue_tasks([task])
    commit.publish("news", {"MessageId": "m1"}, 100)
    commit.ack(KEYS.events, entry_id)

    assert store.commit(commit) == []

    assert store.load(["e1"]) == {"e1": (execution("e1"), 1)}
    assert redis_client.llen(KEYS.history("e1")) == 1
    assert redis_client.zrange(KEYS.status("RUNNING"), 0, -1) == [b"e1"]
    assert redis_client.zscore(
        KEYS.timers, json.dumps({"execution": "e1", "token": "e1:2", "type": "TimerFired"})
    )
    assert redis_client.xlen(KEYS.topic_log("news")) == 1
    assert redis_client.xlen(KEYS.events) == 0
    queue = Queue(KEYS.task_queue_name, connection=redis_client, serializer=JSONSerializer)
    (job,) = queue.jobs
    assert job.func_name == "worker.entry.run_tasks"
    assert job.args == [[task], KEYS.events]
    assert job.get_status() == "queued"


def test_a_stale_version_refuses_the_whole_batch(redis_client: redis.Redis) -> None:
    store = Store(redis_client, KEYS)
    first = store.new_commit()
    first.save_execution(execution("e1"), 3)
    store.commit(first)

    commit = store.new_commit()
    commit.expect_version("e2", 0)
    commit.save_execution(execution("e2"), 1)
    commit.expect_version("e1", 2)
    commit.save_execution(execution("e1", "SUCCEEDED"), 3)
    conflicts = store.commit(commit)

    assert [(c.kind, c.key) for c in conflicts] == [("version", KEYS.execution("e1"))]
    assert store.load(["e1", "e2"]) == {"e1": (execution("e1"), 3), "e2": (None, 0)}


def test_an_entry_already_acknowledged_elsewhere_is_not_applied_again(redis_client: redis.Redis) -> None:
    store = Store(redis_client, KEYS)
    entry_id = pending_entry(redis_client)
    redis_client.xack(KEYS.events, GROUP, entry_id)

    commit = store.new_commit()
    commit.expect_pending(KEYS.events, entry_id)
    commit.append_history("e1", [{"id": 1}])
    commit.ack(KEYS.events, entry_id)
    conflicts = store.commit(commit)

    assert [(c.kind, c.entry_id) for c in conflicts] == [("acked", entry_id)]
    assert redis_client.llen(KEYS.history("e1")) == 0


def test_a_batch_that_would_fail_half_way_writes_nothing(redis_client: redis.Redis) -> None:
    store = Store(redis_client, KEYS)
    redis_client.set(KEYS.history("e1"), "not a list")
    commit = store.new_commit()
    commit.save_execution(execution("e1"), 1)
    commit.append_history("e1", [{"id": 1}])

    with pytest.raises(CommitRefused, match="wrong type"):
        store.commit(commit)

    assert store.load(["e1"]) == {"e1": (None, 0)}


def test_long_values_land_byte_for_byte_beside_short_ones(redis_client: redis.Redis) -> None:
    # Values from LONG_VALUE characters on travel as arguments of their own, the rest inside
    # the JSON array; both must arrive unchanged, quotes, backslashes and non-ASCII included.
    store = Store(redis_client, KEYS)
    short = {"id": 1, "q": '"\\'}
    long = {"id": 2, "text": 'a "quoted" \\ back\\slash, ünïcødé 🐉 ' * 8}
    padding = LONG_VALUE - len(json.dumps({"id": 3, "pad": ""}, separators=(",", ":")))
    exactly = {"id": 3, "pad": "x" * padding}
    commit = store.new_commit()
    commit.save_execution(execution("e1"), 1)
    commit.append_history("e1", [short, long, exactly])
    commit.add_stream_entry(KEYS.events, {"short": "s", "long": "L" * 500})
    _, argv = commit.arguments()

    assert store.commit(commit) == []

    ops = json.loads(argv[1])
    # Lua counts from 1: ARGV[3] is argv[2], the first long value.
    assert sorted(index for index in ops if isinstance(index, int)) == list(range(3, len(argv) + 1))
    history = redis_client.lrange(KEYS.history("e1"), 0, -1)
    assert [json.loads(item) for item in history] == [short, long, exactly]
    ((_, fields),) = redis_client.xrange(KEYS.events)
    assert fields == {b"short": b"s", b"long": b"L" * 500}
    assert store.load(["e1"]) == {"e1": (execution("e1"), 1)}


def test_writes_to_one_index_keep_their_order_when_gathered(redis_client: redis.Redis) -> None:
    # The script sends the ZADDs of one key as one call; a ZREM of the same key in between must
    # still see the ZADDs before it, and ZADDs after it must still land.
    store = Store(redis_client, KEYS)
    commit = store.new_commit()
    commit.add_timer(1.0, {"n": 1})
    commit.add_timer(2.0, {"n": 2})
    commit.remove_timer({"n": 1})
    commit.add_timer(3.0, {"n": 3})
    commit.add_timer(4.0, {"n": 1})
    commit.remove_timer({"n": 3})

    assert store.commit(commit) == []

    members = redis_client.zrange(KEYS.timers, 0, -1, withscores=True)
    assert [(json.loads(member), score) for member, score in members] == [({"n": 2}, 2.0), ({"n": 1}, 4.0)]


def test_a_batch_acknowledges_and_removes_every_entry_it_consumed(redis_client: redis.Redis) -> None:
    store = Store(redis_client, KEYS)
    ensure_group(redis_client, KEYS.events)
    for n in range(2500):  # more than one slice of the gathered XACK
        redis_client.xadd(KEYS.events, {"event": str(n)})
    redis_client.xadd(KEYS.events, {"event": "left"})
    ((_, entries),) = redis_client.xreadgroup(GROUP, "o1", {KEYS.events: ">"}, count=2500)
    commit = store.new_commit()
    for entry_id, _ in entries:
        commit.expect_pending(KEYS.events, entry_id.decode())
        commit.ack(KEYS.events, entry_id.decode())

    assert store.commit(commit) == []

    assert redis_client.xpending(KEYS.events, GROUP)["pending"] == 0
    assert [fields for _, fields in redis_client.xrange(KEYS.events)] == [{b"event": b"left"}]


def test_the_script_refuses_an_operation_naming_an_argument_not_sent(redis_client: redis.Redis) -> None:
    commit_script = lua_script(redis_client, "commit")
    ops = ["exec", "1", "1", 3, "exec", "1", "2", 4]  # ARGV[4] is not sent

    with pytest.raises(redis.ResponseError, match=r"names ARGV\[4\], which is not a long argument"):
        commit_script(keys=[KEYS.execution("e1")], args=[GROUP, json.dumps(ops), "{}"])

    assert not redis_client.exists(KEYS.execution("e1"))
