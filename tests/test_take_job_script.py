"""take_job.lua called directly: which jobs it starts, what it replies, and what it leaves untouched.

A job it does not start (another application's, one with callbacks, another timeout, data that
is not the orchestrators' task JSON) must come back as read and nothing else may change: the
worker then judges it the strict way. A job it starts gets its leases and RQ's bookkeeping in
the same call.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis

from orchestrator.protocol.jobs import JOB_TIMEOUT_SECONDS, TASK_ENTRY_POINT, rq_job_fields
from orchestrator.protocol.keys import SharedKeys
from orchestrator.protocol.scripts import lua_script

KEYS = SharedKeys("t")
WORKER = "w1"
REQUEST_ID = "00000000-0000-4000-8000-000000000000"
RECORDED = json.dumps([["HSET", "t:bookkeeping", "status", "started"], ["EXPIRE", "t:bookkeeping", "60"]])


def task(n: int, **changes: object) -> dict[str, Any]:
    return {
        "execution": f"exec-{n}",
        "token": f"exec-{n}:{n}",
        "function": "Fn",
        "payload": {"n": n},
        **changes,
    }


def put_job(client: redis.Redis, tasks: list[Any], **changes: str) -> str:
    """A task job as the orchestrators write it (with ``changes``), claimed by WORKER; returns its id."""
    job_id, fields = rq_job_fields(tasks, KEYS)
    client.hset(SharedKeys.rq_job(job_id), mapping={**{k: str(v) for k, v in fields.items()}, **changes})
    client.rpush(KEYS.claimed(WORKER), job_id)
    return job_id


def take(client: redis.Redis, job_id: str, recorded: str = RECORDED) -> list[Any]:
    keys = [SharedKeys.rq_job(job_id), KEYS.claimed(WORKER), KEYS.leases]
    args = [job_id, "30.0", WORKER, REQUEST_ID, TASK_ENTRY_POINT, KEYS.task_queue_name, KEYS.events]
    return list(lua_script(client, "take_job")(keys=keys, args=[*args, str(JOB_TIMEOUT_SECONDS), recorded]))


def snapshot(client: redis.Redis) -> dict[bytes, bytes]:
    return {key: client.dump(key) for key in sorted(client.keys("*"))}


def lease(n: int, request_id: str = REQUEST_ID) -> dict[str, Any]:
    return {
        "execution": f"exec-{n}", "token": f"exec-{n}:{n}", "function": "Fn", "worker": WORKER,
        "lease_seconds": 30.0, "request_id": request_id,
    }  # fmt: skip


def test_a_task_job_starts_with_one_lease_per_task_in_task_order(redis_client: redis.Redis) -> None:
    tasks = [task(n) for n in range(1, 13)] + [{"execution": "no token"}, task(13, function=7)]
    job_id = put_job(redis_client, tasks)
    fields = redis_client.hgetall(SharedKeys.rq_job(job_id))
    before = time.time()

    reply = take(redis_client, job_id)

    kind, flat, started, claimed, *leases = reply
    assert (kind, started, claimed) == (b"hash", 1, 1)
    assert dict(zip(flat[::2], flat[1::2], strict=True)) == fields
    expected = [lease(n, REQUEST_ID[: -len(str(n))] + str(n) if n > 1 else REQUEST_ID) for n in range(1, 13)]
    expected.append({**lease(13, REQUEST_ID[:-2] + "13"), "function": ""})
    assert [json.loads(record) for record in leases] == expected
    stored = redis_client.zrange(KEYS.leases, 0, -1, withscores=True)
    assert sorted(record for record, _ in stored) == sorted(leases)
    assert all(before + 29 < due < time.time() + 31 for _, due in stored)
    assert redis_client.lrange(KEYS.claimed(WORKER), 0, -1) == []
    assert redis_client.hgetall("t:bookkeeping") == {b"status": b"started"}


def test_a_job_given_back_before_it_was_taken_still_starts_and_says_so(redis_client: redis.Redis) -> None:
    job_id = put_job(redis_client, [task(1)])
    redis_client.delete(KEYS.claimed(WORKER))

    reply = take(redis_client, job_id)

    assert (reply[2], reply[3]) == (1, 0)
    assert redis_client.zcard(KEYS.leases) == 1


def test_the_same_call_repeated_sets_the_same_leases(redis_client: redis.Redis) -> None:
    job_id = put_job(redis_client, [task(1), task(2)])

    first, second = take(redis_client, job_id), take(redis_client, job_id)

    assert first[4:] == second[4:]
    assert redis_client.zcard(KEYS.leases) == 2


def test_a_job_that_is_not_there_or_not_a_hash_is_only_named(redis_client: redis.Redis) -> None:
    redis_client.set(SharedKeys.rq_job("a-string"), "x")
    redis_client.rpush(KEYS.claimed(WORKER), "gone", "a-string")
    before = snapshot(redis_client)

    assert take(redis_client, "gone") == [b"none", [], 0]
    assert take(redis_client, "a-string") == [b"string", [], 0]

    assert snapshot(redis_client) == before


@pytest.mark.parametrize(
    "changes",
    [
        {"success_callback_name": "app.on_success"},
        {"failure_callback_name": "app.on_failure"},
        {"stopped_callback_name": "app.on_stop"},
        {"webhooks": '["http://x"]'},
        {"origin": "another-queue"},
        {"timeout": "60"},
        {"data": "not json"},
        {"data": '{"a": 1}'},
        {"data": json.dumps(["app.other", None, [[task(1)], KEYS.events], {}])},
        {"data": json.dumps([TASK_ENTRY_POINT, "instance", [[task(1)], KEYS.events], {}])},
        {"data": json.dumps([TASK_ENTRY_POINT, None, [[task(1)], KEYS.events], {"k": 1}])},
        {"data": json.dumps([TASK_ENTRY_POINT, None, [[task(1)], "another:events"], {}])},
        {"data": json.dumps([TASK_ENTRY_POINT, None, [[task(1)], KEYS.events, 3], {}])},
        {"data": json.dumps([TASK_ENTRY_POINT, None, ["tasks", KEYS.events], {}])},
        {"data": json.dumps([TASK_ENTRY_POINT, None, [[task(1)], KEYS.events], {}, 5])},
    ],
    ids=[
        "success callback", "failure callback", "stopped callback", "webhooks", "origin", "timeout",
        "data not json", "data an object", "another function", "an instance", "keyword arguments",
        "another stream", "a third argument", "tasks not a list", "five items",
    ],
)  # fmt: skip
def test_a_job_the_orchestrators_would_not_write_comes_back_as_read_and_untouched(
    redis_client: redis.Redis, changes: dict[str, str]
) -> None:
    job_id = put_job(redis_client, [task(1)], **changes)
    fields = redis_client.hgetall(SharedKeys.rq_job(job_id))
    before = snapshot(redis_client)

    kind, flat, started = take(redis_client, job_id)

    assert (kind, started) == (b"hash", 0)
    assert dict(zip(flat[::2], flat[1::2], strict=True)) == fields
    assert snapshot(redis_client) == before


def test_a_job_without_data_comes_back_as_read_and_untouched(redis_client: redis.Redis) -> None:
    job_id = put_job(redis_client, [task(1)])
    redis_client.hdel(SharedKeys.rq_job(job_id), "data")
    before = snapshot(redis_client)

    assert take(redis_client, job_id)[::2] == [b"hash", 0]

    assert snapshot(redis_client) == before


def test_empty_callbacks_as_rq_writes_them_do_not_keep_a_job_from_starting(redis_client: redis.Redis) -> None:
    job_id = put_job(redis_client, [task(1)], success_callback_name="", webhooks="")

    assert take(redis_client, job_id)[2] == 1
