"""Commands on a connection of their own (orchestrator.protocol.own_connection), and the orchestrator's
blocking read that uses one (orchestrator.runtime.work_wait).

What a caller relies on: the replies are the ones redis-py would have read, in order, an error
reply among them read whole; a lost connection raises as redis-py raises it, or is retried as the
client retries its own commands; a client whose class sends commands its own way keeps its way.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis
from hiredis import pack_command
from redis.backoff import NoBackoff
from redis.retry import Retry

from orchestrator.protocol.own_connection import OwnConnection, own_connection, sends_commands_as_redis_does
from orchestrator.runtime.keys import GROUP
from orchestrator.runtime.sources import ensure_group, is_missing_group
from orchestrator.runtime.work_wait import WorkWait


def packed(*commands: tuple[Any, ...]) -> bytes:
    return b"".join(pack_command(command) for command in commands)


def test_an_exchange_reads_every_reply_in_order_an_error_reply_among_them(redis_client: redis.Redis) -> None:
    own = OwnConnection(redis_client)
    redis_client.set("t:string", "x")

    replies = own.exchange(
        packed(("RPUSH", "t:list", "a"), ("LPUSH", "t:string", "b"), ("LLEN", "t:list")), 3
    )

    assert replies[0] == 1 and replies[2] == 1
    assert isinstance(replies[1], redis.ResponseError) and "WRONGTYPE" in str(replies[1])
    assert own.exchange(packed(("LRANGE", "t:list", 0, -1)), 1) == [[b"a"]]  # still in step


def test_a_lost_connection_raises_as_redis_py_does_and_the_next_exchange_reconnects(
    redis_client: redis.Redis, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    own = OwnConnection(client)
    assert own.exchange(packed(("PING",)), 1) == [b"PONG"]
    redis_client.client_kill_filter(skipme=True, _type="normal")  # every connection but this one

    with pytest.raises(redis.ConnectionError):
        own.exchange(packed(("PING",)), 1)
    assert own.exchange(packed(("PING",)), 1) == [b"PONG"]
    client.close()


def test_a_retried_exchange_outlives_a_lost_connection_as_the_clients_own_commands_do(
    redis_client: redis.Redis, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url, retry=Retry(NoBackoff(), 1))
    own = OwnConnection(client)
    own.exchange(packed(("PING",)), 1)
    redis_client.client_kill_filter(skipme=True, _type="normal")
    assert client.incr("t:n") == 1  # the client's own command, retried

    redis_client.client_kill_filter(skipme=True, _type="normal")
    assert own.exchange(packed(("INCR", "t:n")), 1, retried=True) == [2]
    client.close()


class Instrumented(redis.Redis):
    """A client whose class changes how pipelines are made."""

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        return super().pipeline(*args, **kwargs)


def test_a_client_whose_class_sends_commands_its_own_way_keeps_its_way(redis_url: str) -> None:
    plain, instrumented = redis.Redis.from_url(redis_url), Instrumented.from_url(redis_url)

    assert sends_commands_as_redis_does(plain) and not sends_commands_as_redis_does(instrumented)
    assert own_connection(instrumented, "dequeue") is None
    assert own_connection(plain, "dequeue") is own_connection(plain, "dequeue")  # one per purpose
    assert own_connection(plain, "dequeue") is not own_connection(plain, "reads")
    plain.close()
    instrumented.close()


# -- the orchestrator's blocking read ------------------------------------------------------------


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("client_class", [redis.Redis, Instrumented])
def test_the_blocking_read_gives_entries_as_redis_py_gives_them(
    redis_url: str, protocol: int, client_class: type[redis.Redis]
) -> None:
    client = client_class.from_url(redis_url, protocol=protocol)
    for stream in ("t:events", "t:queue"):
        ensure_group(client, stream)
    client.xadd("t:events", {"event": '{"type": "TaskSucceeded"}', "extra": "1"})
    client.xadd("t:queue", {"body": "{}"})
    client.xadd("t:queue", {"body": "[]"})
    expected = [("t:events", client.xrange("t:events")), ("t:queue", client.xrange("t:queue"))]

    batches = WorkWait(client, "o1").read(["t:events", "t:queue"], 10, 50)

    assert sorted(batches) == expected
    assert WorkWait(client, "o1").read(["t:events", "t:queue"], 10, 20) == []  # nothing new: it waited
    client.close()


def test_the_blocking_read_wakes_for_an_entry_added_while_it_waits(redis_client: redis.Redis) -> None:
    ensure_group(redis_client, "t:events")
    added: list[bytes] = []

    def add_later() -> None:
        time.sleep(0.2)
        added.append(redis_client.xadd("t:events", {"event": "{}"}))

    adder = threading.Thread(target=add_later)
    adder.start()
    [(stream, entries)] = WorkWait(redis_client, "o1").read(["t:events"], 1, 30_000)
    adder.join()

    assert (stream, entries) == ("t:events", [(added[0], {b"event": b"{}"})])
    assert redis_client.xpending("t:events", GROUP)["pending"] == 1  # delivered to o1, as XREADGROUP does


def test_the_blocking_read_of_a_stream_without_its_group_raises_what_tells_the_group_is_missing(
    redis_client: redis.Redis,
) -> None:
    redis_client.xadd("t:events", {"event": "{}"})

    with pytest.raises(redis.ResponseError) as refused:
        WorkWait(redis_client, "o1").read(["t:events"], 1, 10)
    assert is_missing_group(refused.value)


def test_the_blocking_read_outlives_a_lost_connection_when_its_client_retries(
    redis_client: redis.Redis, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url, retry=Retry(NoBackoff(), 1))
    ensure_group(client, "t:events")
    wait = WorkWait(client, "o1")
    assert wait.read(["t:events"], 1, 10) == []
    redis_client.client_kill_filter(skipme=True, _type="normal")
    entry_id = redis_client.xadd("t:events", {"event": "{}"})

    assert wait.read(["t:events"], 1, 10) == [("t:events", [(entry_id, {b"event": b"{}"})])]
    client.close()
