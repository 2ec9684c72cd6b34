"""The orchestrator's wait for work: one blocking XREADGROUP of its streams, on a connection of its own.

One at a time, every step of every execution begins with this read waking up, so it is sent
the short way (orchestrator.protocol.own_connection): packed by hiredis on a connection kept for
it, its reply turned into redis-py's shape here. A client whose class sends commands its own way
(a test's, an instrumented one) reads through redis-py's ``xreadgroup``.
"""

from __future__ import annotations

from typing import Any

import redis
from hiredis import pack_command

from orchestrator.protocol.own_connection import OwnConnection, sends_commands_as_redis_does
from orchestrator.runtime.intake import Entry
from orchestrator.runtime.keys import GROUP
from orchestrator.runtime.sources import text


class WorkWait:
    """Blocking reads of new entries in the ``orchestrators`` group, as ``consumer``.

    Args:
        redis_client: the orchestrator's client; its connection pool lends the connection.
        consumer: the orchestrator's name in the group.
    """

    def __init__(self, redis_client: redis.Redis, consumer: str) -> None:
        self.redis = redis_client
        self.consumer = consumer
        self.own = OwnConnection(redis_client) if sends_commands_as_redis_does(redis_client) else None

    def read(self, streams: list[str], count: int, block_ms: int) -> list[tuple[str, list[Entry]]]:
        """Up to ``count`` new entries of each stream, waiting up to ``block_ms`` for the first.

        Returns:
            (stream, entries) pairs, each entry (id, fields) as redis-py gives them.

        Raises:
            redis.ResponseError: as XREADGROUP refuses (NOGROUP when a group is missing).
            redis.ConnectionError, redis.TimeoutError: when the connection is lost, after the
                client's own retries.
        """
        if self.own is None:
            reply = self.redis.xreadgroup(
                GROUP, self.consumer, dict.fromkeys(streams, ">"), count=count, block=block_ms
            )
            return stream_batches(reply)
        words = ("XREADGROUP", "GROUP", GROUP, self.consumer, "COUNT", count, "BLOCK", block_ms, "STREAMS")
        [reply] = self.own.exchange(pack_command((*words, *streams, *[">"] * len(streams))), 1, retried=True)
        if isinstance(reply, redis.ResponseError):
            raise reply
        return raw_stream_batches(reply)


def stream_batches(reply: Any) -> list[tuple[str, list[Entry]]]:
    """(stream, entries) pairs of an XREADGROUP reply as redis-py parsed it, in RESP2 or RESP3."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return [(text(stream), [e for batch in batches for e in batch]) for stream, batches in reply.items()]
    return [(text(stream), batch) for stream, batch in reply]


def raw_stream_batches(reply: Any) -> list[tuple[str, list[Entry]]]:
    """(stream, entries) pairs of an XREADGROUP reply as Redis sent it, in RESP2 or RESP3.

    An entry's fields become a dict, as redis-py's callback makes them; an entry deleted since it
    was delivered comes with no fields (an empty dict), as redis-py gives it too.
    """
    if not reply:
        return []
    pairs = reply.items() if isinstance(reply, dict) else reply
    return [(text(stream), [_entry(raw) for raw in entries]) for stream, entries in pairs]


def _entry(raw: list[Any]) -> Entry:
    entry_id, flat = raw[0], raw[1]
    if not flat:
        return entry_id, {}
    return entry_id, dict(zip(flat[::2], flat[1::2], strict=True))
