"""commit.lua's first pass, operation by operation: what it refuses, with which reply, and that a
refused batch writes nothing at all (the script is not rolled back, so every check runs first).

The script is called with raw operations here, as ``Store.commit`` sends them, so each opcode's
checks are pinned whatever the Python side happens to build today.
"""

from __future__ import annotations

import json

import pytest
import redis

from orchestrator.runtime.keys import GROUP
from orchestrator.runtime.scripts import lua_script

KEYS = ["x:exec", "x:history", "x:index", "x:set", "x:jobs", "x:events", "x:metrics", "x:bad"]
EXEC, HISTORY, INDEX, SET, JOBS, EVENTS, METRICS, BAD = KEYS


def k(key: str) -> str:
    """The operation word naming ``key``: its index in KEYS, from 1."""
    return str(KEYS.index(key) + 1)


def commit(redis_client: redis.Redis, ops: list[object], *long_values: str) -> list[str]:
    reply = lua_script(redis_client, "commit")(keys=KEYS, args=[GROUP, json.dumps(ops), *long_values])
    return [item.decode() for item in reply]


def snapshot(redis_client: redis.Redis) -> dict[bytes, bytes]:
    return {key: redis_client.dump(key) for key in sorted(redis_client.keys("*"))}


def pending_stream(redis_client: redis.Redis) -> str:
    """EVENTS with the group and one entry read and not yet acknowledged; returns its id."""
    redis_client.xgroup_create(EVENTS, GROUP, id="0", mkstream=True)
    redis_client.xadd(EVENTS, {"event": "{}"})
    ((_, [(entry_id, _)]),) = redis_client.xreadgroup(GROUP, "o1", {EVENTS: ">"})
    return entry_id.decode()


def every_write(entry_id: str) -> list[object]:
    """One of each write, in the order an orchestrator's commit puts them."""
    return [
        "exec", k(EXEC), "1", 3,
        "rpush", k(HISTORY), "2", "h1", 4,
        "zadd", k(INDEX), "5", "x",
        "zrem", k(INDEX), "gone",
        "sadd", k(SET), "member",
        "hset", k(JOBS), "2", "status", "queued", "data", 5,
        "xadd", k(EVENTS), "100", "1", "event", "{}",
        "publish", "channel", "message",
        "ack", k(EVENTS), entry_id,
        "expire", k(JOBS), "60",
        "hincrby", k(METRICS), "2", "started", "1", "failed", "-2",
    ]  # fmt: skip


def test_every_write_lands_when_every_check_holds(redis_client: redis.Redis) -> None:
    entry_id = pending_stream(redis_client)
    redis_client.zadd(INDEX, {"gone": 1.0})

    ops = ["version", k(EXEC), "0", "pending", k(EVENTS), entry_id, *every_write(entry_id)]
    assert commit(redis_client, ops, '{"name": "x"}', '{"id": 2}', '["job"]') == []

    assert redis_client.hgetall(EXEC) == {b"execution": b'{"name": "x"}', b"version": b"1"}
    assert redis_client.lrange(HISTORY, 0, -1) == [b"h1", b'{"id": 2}']
    assert redis_client.zrange(INDEX, 0, -1, withscores=True) == [(b"x", 5.0)]
    assert redis_client.smembers(SET) == {b"member"}
    assert redis_client.hgetall(JOBS) == {b"status": b"queued", b"data": b'["job"]'}
    assert 0 < redis_client.ttl(JOBS) <= 60
    assert [fields for _, fields in redis_client.xrange(EVENTS)] == [{b"event": b"{}"}]  # the acked one left
    assert redis_client.xpending(EVENTS, GROUP)["pending"] == 0
    assert redis_client.hgetall(METRICS) == {b"started": b"1", b"failed": b"-2"}


@pytest.mark.parametrize(
    ("ops", "wrong"),
    [
        (["version", k(BAD), "0"], BAD),
        (["pending", k(BAD), "1-1"], BAD),
        (["exec", k(BAD), "1", "{}"], BAD),
        (["rpush", k(BAD), "1", "v"], BAD),
        (["zadd", k(BAD), "1", "m"], BAD),
        (["zrem", k(BAD), "m"], BAD),
        (["sadd", k(BAD), "m"], BAD),
        (["hset", k(BAD), "1", "f", "v"], BAD),
        (["xadd", k(BAD), "0", "1", "f", "v"], BAD),
        (["ack", k(BAD), "1-1"], BAD),
    ],
    ids=["version", "pending", "exec", "rpush", "zadd", "zrem", "sadd", "hset", "xadd", "ack"],
)
def test_a_key_of_another_type_refuses_the_batch_and_nothing_is_written(
    redis_client: redis.Redis, ops: list[object], wrong: str
) -> None:
    entry_id = pending_stream(redis_client)
    redis_client.set(BAD, "a string")
    before = snapshot(redis_client)

    assert commit(redis_client, [*every_write(entry_id), *ops], "{}", "{}", "[]") == ["wrongtype", wrong]

    assert snapshot(redis_client) == before


def test_each_key_of_another_type_is_named_once_in_operation_order(redis_client: redis.Redis) -> None:
    redis_client.set(INDEX, "a string")
    redis_client.set(HISTORY, "a string")
    before = snapshot(redis_client)
    ops = [
        "zadd", k(INDEX), "1", "a",
        "rpush", k(HISTORY), "1", "v",
        "zadd", k(INDEX), "not a score", "b",  # a key refused already is not read again
        "zrem", k(INDEX), "a",
    ]  # fmt: skip

    assert commit(redis_client, ops) == ["wrongtype", INDEX, "wrongtype", HISTORY]

    assert snapshot(redis_client) == before


@pytest.mark.parametrize(
    ("ops", "key", "why"),
    [
        (["rpush", k(HISTORY), "0"], HISTORY, "rpush needs a count of 1 or more, not 0"),
        (["rpush", k(HISTORY), "1.5"], HISTORY, "rpush needs a count of 1 or more, not 1.5"),
        (["hset", k(JOBS), "x"], JOBS, "hset needs a count of 1 or more, not x"),
        (["hincrby", k(METRICS), "0"], METRICS, "hincrby needs a count of 1 or more, not 0"),
        (["hincrby", k(METRICS), "1", "f", "1.5"], METRICS, "hincrby increment 1.5 is not a whole number"),
        (["hincrby", k(METRICS), "2", "f", "1", "g", "+1"], METRICS,
         "hincrby increment +1 is not a whole number"),
        (["zadd", k(INDEX), "nan", "m"], INDEX, "zadd score nan is not a number"),
        (["zadd", k(INDEX), " 1", "m"], INDEX, "zadd score  1 is not a number"),
        (["zadd", k(INDEX), "one", "m"], INDEX, "zadd score one is not a number"),
        (["expire", k(JOBS), "0"], JOBS, "expire needs a whole number of seconds from 1, not 0"),
        (["expire", k(JOBS), "ten"], JOBS, "expire needs a whole number of seconds from 1, not ten"),
        (["xadd", k(EVENTS), "-1", "1", "f", "v"], EVENTS, "xadd MAXLEN -1 is not a whole number"),
        (["xadd", k(EVENTS), "1.5", "1", "f", "v"], EVENTS, "xadd MAXLEN 1.5 is not a whole number"),
        (["xadd", k(EVENTS), "0", "0"], EVENTS, "xadd needs 1 to 1000 fields, not 0"),
        (["xadd", k(EVENTS), "0", "1001", *["f", "v"] * 1001], EVENTS,
         "xadd needs 1 to 1000 fields, not 1001"),
    ],  # a count that is no count spans no values: such an operation ends the batch here
    ids=[
        "rpush count 0", "rpush count 1.5", "hset count", "hincrby count", "hincrby increment 1.5",
        "hincrby increment +1", "zadd nan", "zadd blank", "zadd word", "expire 0", "expire word",
        "xadd maxlen -1", "xadd maxlen 1.5", "xadd no fields", "xadd too many fields",
    ],
)  # fmt: skip
def test_an_argument_redis_would_refuse_refuses_the_batch_and_nothing_is_written(
    redis_client: redis.Redis, ops: list[object], key: str, why: str
) -> None:
    entry_id = pending_stream(redis_client)
    before = snapshot(redis_client)

    assert commit(redis_client, [*every_write(entry_id), *ops], "{}", "{}", "[]") == ["invalid", key, why]

    assert snapshot(redis_client) == before


def test_every_conflict_is_reported_in_operation_order(redis_client: redis.Redis) -> None:
    entry_id = pending_stream(redis_client)
    redis_client.xack(EVENTS, GROUP, entry_id)
    redis_client.hset(EXEC, mapping={"version": "3", "execution": "{}"})
    redis_client.set(BAD, "a string")
    before = snapshot(redis_client)
    ops = [
        "version", k(EXEC), "2",
        "pending", k(EVENTS), entry_id,
        "sadd", k(BAD), "m",
        "zadd", k(INDEX), "x", "m",
        "version", k(HISTORY), "0",
        *every_write(entry_id),
    ]  # fmt: skip

    assert commit(redis_client, ops, "{}", "{}", "[]") == [
        "version", EXEC, "acked", EVENTS, entry_id, "wrongtype", BAD,
        "invalid", INDEX, "zadd score x is not a number",
    ]  # fmt: skip

    assert snapshot(redis_client) == before


def test_a_version_check_reads_an_absent_execution_as_0(redis_client: redis.Redis) -> None:
    assert commit(redis_client, ["version", k(EXEC), "1", "sadd", k(SET), "m"]) == ["version", EXEC]
    assert commit(redis_client, ["version", k(EXEC), "0", "sadd", k(SET), "m"]) == []

    assert redis_client.smembers(SET) == {b"m"}


def test_a_version_check_on_an_absent_key_does_not_make_it_a_hash_for_later_writes(
    redis_client: redis.Redis,
) -> None:
    # The version check's HGET proves its key a hash or absent: a write that needs another type
    # must still find out which.
    ops = ["version", k(HISTORY), "0", "rpush", k(HISTORY), "1", "v", "exec", k(EXEC), "1", "{}"]

    assert commit(redis_client, ops) == []
    assert redis_client.lrange(HISTORY, 0, -1) == [b"v"]

    assert commit(redis_client, ["version", k(EXEC), "1", "rpush", k(EXEC), "1", "v"]) == ["wrongtype", EXEC]


def test_a_metrics_hash_of_another_type_loses_its_counts_and_never_the_batch(
    redis_client: redis.Redis,
) -> None:
    redis_client.set(METRICS, "a string")
    ops = ["sadd", k(SET), "m", "hincrby", k(METRICS), "1", "started", "not even checked"]

    assert commit(redis_client, ops) == []

    assert redis_client.smembers(SET) == {b"m"}
    assert redis_client.get(METRICS) == b"a string"


def test_a_metrics_key_of_another_type_that_a_later_write_needs_refuses_the_batch(
    redis_client: redis.Redis,
) -> None:
    redis_client.set(METRICS, "a string")
    ops = ["hincrby", k(METRICS), "1", "started", "1", "sadd", k(SET), "m", "hset", k(METRICS), "1", "f", "v"]

    assert commit(redis_client, ops) == ["wrongtype", METRICS]

    assert redis_client.keys("*") == [METRICS.encode()]


@pytest.mark.parametrize("opcode", ["ack", "pending"])
def test_a_stream_without_the_group_fails_the_script_before_any_write(
    redis_client: redis.Redis, opcode: str
) -> None:
    redis_client.xadd(EVENTS, {"event": "{}"})
    before = snapshot(redis_client)

    with pytest.raises(redis.ResponseError, match="NOGROUP"):
        commit(redis_client, ["sadd", k(SET), "m", opcode, k(EVENTS), "1-1"])

    assert snapshot(redis_client) == before


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        (["sadd", k(SET), "m", "frobnicate", k(SET)], "unknown opcode frobnicate"),
        (["sadd", k(SET), "m", "sadd", "9", "m"], r"operation 4 \(sadd\) names no key: 9"),
        (["sadd", k(SET), "m", "expire", "9", "10"], r"operation 4 \(expire\) names no key: 9"),
        (["sadd", k(SET), "m", "sadd", k(SET), None], "operation argument 6 is a userdata, not a string"),
        (["sadd", k(SET), "m", "sadd", k(SET), 2], r"names ARGV\[2\], which is not a long argument"),
        (["sadd", k(SET), "m", "sadd", k(SET), 3.5], r"names ARGV\[3.5\], which is not a long argument"),
    ],
    ids=["unknown opcode", "key index past KEYS", "expire's key past KEYS", "null", "ARGV 2", "ARGV 3.5"],
)
def test_a_malformed_batch_fails_the_script_before_any_write(
    redis_client: redis.Redis, ops: list[object], message: str
) -> None:
    with pytest.raises(redis.ResponseError, match=message):
        commit(redis_client, ops)

    assert redis_client.keys("*") == []


def test_writes_to_one_stream_keep_their_order_around_gathered_acks(redis_client: redis.Redis) -> None:
    entry_id = pending_stream(redis_client)
    ops = [
        "ack", k(EVENTS), entry_id,
        "xadd", k(EVENTS), "1", "1", "event", "new",  # MAXLEN ~ 1 trims nothing whole: at most adds
        "zadd", k(INDEX), "1", "a",
        "zadd", k(INDEX), "2", "b",
        "zrem", k(INDEX), "a",
        "zadd", k(INDEX), "3", "a",
    ]  # fmt: skip

    assert commit(redis_client, ops) == []

    assert [fields for _, fields in redis_client.xrange(EVENTS)] == [{b"event": b"new"}]
    assert redis_client.zrange(INDEX, 0, -1, withscores=True) == [(b"b", 2.0), (b"a", 3.0)]
