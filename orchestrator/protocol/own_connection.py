"""Commands on a connection of their own, past redis-py's per-command machinery.

redis-py sends each command through its pool (a lock to take a connection and one to give it
back), its retry wrapper, its encoder (argument by argument) and its reply callbacks: about
40 us of CPU per command in a tight loop here, and two to three times that when the command is
the first thing a process does after waking. The orchestrator's blocking read and a worker's
dequeue are such commands, and every step of every execution waits on one of them. An
OwnConnection keeps one connection of its client's pool for one such caller and sends its
commands packed by hiredis in one write: the same commands, the same replies (before redis-py's
callbacks), the same errors.
"""

from __future__ import annotations

import os
import weakref
from typing import Any

from redis import Redis
from redis.connection import AbstractConnection
from redis.exceptions import ResponseError


def sends_commands_as_redis_does(client: Redis) -> bool:
    """Whether ``client``'s class sends commands as redis-py's own Redis does (no override in between).

    A client whose class changes how commands are sent (a test's, an instrumented one) is left
    to go its way: its callers use redis-py's commands instead of an OwnConnection.
    """
    kind = type(client)
    return kind is Redis or (
        kind.execute_command is Redis.execute_command
        and kind.evalsha is Redis.evalsha
        and kind.pipeline is Redis.pipeline
    )


class OwnConnection:
    """One connection of ``client``'s pool, taken on first use and kept by one caller.

    It carries one exchange at a time: its caller is one thread (the orchestrator's loop, a
    worker's work loop). A forked child takes a connection of its own on its first use.
    """

    def __init__(self, client: Redis) -> None:
        # Held weakly, so that a client nobody uses is freed with the connections kept for it.
        self._client = weakref.ref(client)
        self._connection: AbstractConnection | None = None
        self._pid = 0

    @property
    def client(self) -> Redis:
        client = self._client()
        assert client is not None, "an own connection outlived its client"
        return client

    def held_here(self) -> bool:
        """Whether this process holds the connection already (not before its first use, nor in a fork)."""
        return self._connection is not None and self._pid == os.getpid()

    def connection(self) -> AbstractConnection:
        """The connection; taken from the client's pool on first use, and again in a forked child."""
        if not self.held_here():
            pool = self.client.connection_pool
            try:
                connection = pool.get_connection()
            except TypeError:  # redis-py before 5.3 wants a command's name
                connection = pool.get_connection("PING")  # type: ignore[call-arg]
            self._connection, self._pid = connection, os.getpid()
        return self._connection

    def exchange(self, packed: bytes, replies: int, retried: bool = False) -> list[Any]:
        """Send ``packed`` (commands packed by hiredis) and read their ``replies``, in order.

        A command Redis refused has its error (a ResponseError) as its reply; the replies after
        it are read all the same. With ``retried``, a lost connection is retried as the client's
        own commands retry it (its Retry policy); else it raises at once.

        Raises:
            redis.ConnectionError, redis.TimeoutError: when the connection was lost (it is
                closed: the next exchange opens it again, and no reply is left unread in it).
        """
        connection = self.connection()

        def attempt() -> list[Any]:
            try:
                connection.send_packed_command([packed])
                return [_reply(connection) for _ in range(replies)]
            except BaseException:
                # A reply left unread (an interrupted read, a signal) would be taken for the next one's.
                connection.disconnect()
                raise

        if not retried:
            return attempt()
        return connection.retry.call_with_retry(attempt, lambda _error: connection.disconnect())


def _reply(connection: AbstractConnection) -> Any:
    try:
        return connection.read_response()
    except ResponseError as refused:  # an error reply, read whole: the connection is in step
        return refused


_kept: weakref.WeakKeyDictionary[Redis, dict[str, OwnConnection]] = weakref.WeakKeyDictionary()


def own_connection(client: Redis, purpose: str) -> OwnConnection | None:
    """The OwnConnection ``client`` keeps for ``purpose``; None when the client's class sends
    commands its own way (then the caller uses redis-py's commands)."""
    if not sends_commands_as_redis_does(client):
        return None
    kept = _kept.setdefault(client, {})
    own = kept.get(purpose)
    if own is None:
        own = kept[purpose] = OwnConnection(client)
    return own
