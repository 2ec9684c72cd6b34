"""A private redis-server never mistakes another server on its port for itself."""

from __future__ import annotations

import pytest
import redis

from orchestrator.runtime import server as server_module
from orchestrator.runtime.server import RedisServer


def test_a_port_taken_before_the_server_binds_it_is_given_up_for_another(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = iter([redis_server.port])
    real_free_port = server_module.free_port
    monkeypatch.setattr(server_module, "free_port", lambda: next(taken, None) or real_free_port())
    other = redis.Redis.from_url(redis_server.url)
    other.set("belongs-to", "the other server")
    with RedisServer() as mine:
        assert mine.port != redis_server.port
        client = redis.Redis.from_url(mine.url)
        assert client.info("server")["process_id"] == mine.process.pid  # type: ignore[union-attr]
        assert client.get("belongs-to") is None
        client.close()
    assert other.get("belongs-to") == b"the other server"
    other.close()


def test_a_port_the_caller_chose_that_is_taken_is_a_clear_error(redis_server: RedisServer) -> None:
    with pytest.raises(RuntimeError, match=f"redis-server did not start on port {redis_server.port}"):
        RedisServer(redis_server.port).start(timeout=5)
    assert redis.Redis.from_url(redis_server.url).ping()
