"""append_reports.lua called directly: reports in, leases out, counts once, RQ's bookkeeping last.

What is broken next to a job (a metrics key of another type, a count Redis will not add) may
lose the counts, never a report, a lease or RQ's bookkeeping of the job's end.
"""

from __future__ import annotations

import json

import redis

from orchestrator.protocol.scripts import lua_script

EVENTS, LEASES, METRICS = "t:events", "t:leases", "t:metrics"
RECORDED = json.dumps([["HSET", "t:rq-worker", "state", "idle"], ["DEL", "t:rq-job"]])


def append(
    client: redis.Redis, reports: list[str], leases: list[str], counts: dict[str, str] | None = None
) -> int:
    keys, args = [EVENTS, LEASES], ["event", str(len(reports)), *reports]
    if counts is not None:
        keys.append(METRICS)
        args += [str(len(counts)), *(word for pair in counts.items() for word in pair)]
    return lua_script(client, "append_reports")(keys=keys, args=[*args, RECORDED, *leases])


def given_a_started_job(client: redis.Redis, leases: list[str]) -> None:
    client.zadd(LEASES, {lease: 1.0 for lease in leases})
    client.hset("t:rq-worker", "state", "busy")
    client.set("t:rq-job", "job")


def reports_appended(client: redis.Redis) -> list[bytes]:
    return [fields[b"event"] for _, fields in client.xrange(EVENTS)]


def test_reports_go_on_in_order_and_leases_come_off_with_the_counts_and_rq_bookkeeping(
    redis_client: redis.Redis,
) -> None:
    leases = [f"lease-{n}" for n in range(2500)]  # more than one slice of the ZREM
    given_a_started_job(redis_client, [*leases, "another job's"])

    assert append(redis_client, ["r1", "r2"], leases, {"done": "2", "failed": "-1"}) == 2

    assert reports_appended(redis_client) == [b"r1", b"r2"]
    assert redis_client.zrange(LEASES, 0, -1) == [b"another job's"]
    assert redis_client.hgetall(METRICS) == {b"done": b"2", b"failed": b"-1"}
    assert redis_client.hget("t:rq-worker", "state") == b"idle"
    assert not redis_client.exists("t:rq-job")


def test_the_same_call_made_again_sends_its_reports_again_but_not_its_counts(
    redis_client: redis.Redis,
) -> None:
    given_a_started_job(redis_client, ["lease-1"])

    append(redis_client, ["r1"], ["lease-1"], {"done": "1"})
    append(redis_client, ["r1"], ["lease-1"], {"done": "1"})

    assert reports_appended(redis_client) == [b"r1", b"r1"]
    assert redis_client.hgetall(METRICS) == {b"done": b"1"}


def test_a_call_without_leases_counts_each_time(redis_client: redis.Redis) -> None:
    append(redis_client, ["r1"], [], {"done": "1"})
    append(redis_client, ["r2"], [], {"done": "1"})

    assert redis_client.hgetall(METRICS) == {b"done": b"2"}


def test_a_metrics_key_of_another_type_loses_the_counts_and_nothing_else(redis_client: redis.Redis) -> None:
    given_a_started_job(redis_client, ["lease-1"])
    redis_client.set(METRICS, "a string")

    append(redis_client, ["r1"], ["lease-1"], {"done": "1"})

    assert reports_appended(redis_client) == [b"r1"]
    assert redis_client.zcard(LEASES) == 0
    assert redis_client.get(METRICS) == b"a string"
    assert redis_client.hget("t:rq-worker", "state") == b"idle"


def test_a_count_redis_will_not_add_loses_that_count_and_nothing_else(redis_client: redis.Redis) -> None:
    given_a_started_job(redis_client, ["lease-1"])
    redis_client.hset(METRICS, "done", "not a number")

    append(redis_client, ["r1"], ["lease-1"], {"done": "1", "failed": "1"})

    assert reports_appended(redis_client) == [b"r1"]
    assert redis_client.hgetall(METRICS) == {b"done": b"not a number", b"failed": b"1"}
    assert redis_client.hget("t:rq-worker", "state") == b"idle"
    assert not redis_client.exists("t:rq-job")
