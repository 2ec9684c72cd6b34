"""The one-script commit: a batch lands whole or not at all, and never twice."""

from __future__ import annotations

import json

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from orchestrator.runtime.keys import GROUP, Keys
from orchestrator.runtime.sources import ensure_group
from orchestrator.runtime.store import CommitRefused, Store

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
