"""The asynchronous connection that ``serve``'s long waits read through (activity polls, sync executions).

A wait is a series of blocking reads of at most ``BLOCK_SLICE_SECONDS`` each, so that a caller
who hangs up is noticed within one slice; the connection's socket waits that long plus the
usual timeout before it calls the server lost.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from orchestrator.runtime.keys import Keys
from orchestrator.settings import Settings

BLOCK_SLICE_SECONDS = 5.0
"""The longest one blocking read of a long wait lasts."""


def blocking_reader(settings: Settings, client_name: str | None = None) -> aioredis.Redis:
    """A connection to ``settings``' Redis for blocking reads of up to ``BLOCK_SLICE_SECONDS``.

    Make it inside the event loop that will use it: its connections belong to that loop.
    """
    return aioredis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=5.0,
        socket_timeout=BLOCK_SLICE_SECONDS + settings.socket_timeout_seconds,
        health_check_interval=30,
        client_name=client_name,
    )


class BlockingWaits:
    """Long waits on one :func:`blocking_reader`, made on first use, in the event loop that uses it.

    Args:
        settings: the Redis URL and the key prefix.
    """

    client_name: str | None = None  # how the connection names itself in CLIENT LIST

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self._redis: aioredis.Redis | None = None

    def connection(self) -> aioredis.Redis:
        # Made on first use, inside the server's event loop, which its connections belong to.
        if self._redis is None:
            self._redis = blocking_reader(self.settings, client_name=self.client_name)
        return self._redis
