"""Fixtures shared by the whole suite: a private redis-server on a free port, never 6379's data."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from orchestrator.runtime.server import RedisServer
from orchestrator.settings import Settings


@pytest.fixture(scope="session", autouse=True)
def private_runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep every ``redstep up`` of the suite, and every lookup of one, out of the user's runtime dir."""
    previous = os.environ.get("REDSTEP_RUNTIME_DIR")
    os.environ["REDSTEP_RUNTIME_DIR"] = str(tmp_path_factory.mktemp("runtime"))
    yield
    if previous is None:
        os.environ.pop("REDSTEP_RUNTIME_DIR", None)
    else:
        os.environ["REDSTEP_RUNTIME_DIR"] = previous


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the test session, started on a free port."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of an empty database on the session's server (flushed before each test)."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def settings(redis_url: str) -> Settings:
    """Settings pointed at the test server, with timing knobs short enough for tests."""
    return Settings(
        redis_url=redis_url,
        prefix="t",
        visibility_timeout_seconds=2.0,
        poll_interval_seconds=0.01,
    )


@pytest.fixture
def subprocess_env(redis_url: str) -> dict[str, str]:
    """The environment for a redstep subprocess that talks to the test server."""
    return {**os.environ, "REDIS_URL": redis_url, "REDSTEP_PREFIX": "t", "PYTHONUNBUFFERED": "1"}
