"""The runtime's one clock: Redis's TIME, carried forward by a monotonic clock between readings."""

from __future__ import annotations

import pytest
import redis

from orchestrator.runtime.clock import RedisClock
from orchestrator.runtime.server import RedisServer


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_it_tells_redis_time_whatever_the_local_wall_clock_says(redis_client: redis.Redis) -> None:
    seconds, microseconds = redis_client.time()
    told = RedisClock(redis_client)()
    assert abs(told - (seconds + microseconds / 1e6)) < 1.0


def test_between_readings_the_monotonic_clock_carries_the_last_one_forward(redis_client: redis.Redis) -> None:
    ticks = Ticks()
    clock = RedisClock(redis_client, refresh_seconds=10.0, monotonic=ticks)
    first = clock()
    ticks.now += 4.25
    assert clock() == pytest.approx(first + 4.25)


def test_it_reads_redis_again_once_a_period_has_passed(redis_client: redis.Redis) -> None:
    ticks = Ticks()
    clock = RedisClock(redis_client, refresh_seconds=1.0, monotonic=ticks)
    clock()
    ticks.now += 3600.0  # an hour by the monotonic clock, though hardly any real time passed
    told = clock()
    seconds, microseconds = redis_client.time()
    assert abs(told - (seconds + microseconds / 1e6)) < 1.0


def test_while_redis_is_away_the_last_reading_goes_on_and_a_first_reading_is_an_error() -> None:
    server = RedisServer().start()
    client = redis.Redis.from_url(server.url, socket_connect_timeout=1)
    ticks = Ticks()
    clock = RedisClock(client, refresh_seconds=1.0, monotonic=ticks)
    first = clock()
    server.stop()
    ticks.now += 5.0
    assert clock() == pytest.approx(first + 5.0)
    client.close()
    never_read = RedisClock(redis.Redis.from_url(server.url, socket_connect_timeout=1))
    with pytest.raises(redis.ConnectionError):
        never_read()
