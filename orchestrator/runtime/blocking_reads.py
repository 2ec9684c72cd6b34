"""The asynchronous connection that ``serve``'s long waits read through (activity polls, sync executions).

A wait is a series of blocking reads of at most ``BLOCK_SLICE_SECONDS`` each, so that a caller
who hangs up is noticed within one slice; the connection's socket waits that long plus the
usual timeout before it calls the server lost.
"""

from __future__ import annotations

import redis.asyncio as aioredis

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
