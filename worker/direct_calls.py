"""A worker's script calls on a connection of their own, past redis-py's per-command machinery.

redis-py sends each command through its pool, its retry wrapper and its observability hooks:
about 25 us a call in a tight loop here (PING: 38 us, against 18 us on a bare socket), and a
worker makes two script calls a job (start_tasks.lua, append_reports.lua). A DirectScript keeps
one connection of the client's pool for itself and sends EVALSHA on it: the same command, the
same reply, the same errors. :meth:`DirectScript.send` sends a call without waiting for it: the
worker starts a job (START) and runs its functions while Redis applies it.

A lost connection raises redis.ConnectionError or TimeoutError as before, having dropped the
socket, which the next call opens again; the callers' own retries
(orchestrator.protocol.reconnect) wait out an outage as they did. A script Redis lost (a restart
without persistence, SCRIPT FLUSH) is loaded again, as redis-py's Script does.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis import Redis
from redis.commands.core import Script
from redis.connection import AbstractConnection
from redis.exceptions import NoScriptError
from redis.typing import EncodableT

from orchestrator.protocol.own_connection import OwnConnection, sends_commands_as_redis_does
from orchestrator.protocol.scripts import lua_script, send_evalsha


class RedisPyScript:
    """One Lua script of orchestrator.protocol's, called through redis-py as usual."""

    def __init__(self, client: Redis, name: str) -> None:
        # Held weakly, and the script unbound from it, so that a client nobody uses is freed with its
        # scripts (direct_script keeps them by client).
        self._client = weakref.ref(client)
        self.script: Script = lua_script(client, name)
        self.script.registered_client = None

    @property
    def client(self) -> Redis:
        client = self._client()
        assert client is not None, "a script outlived its client"
        return client

    def __call__(self, keys: Sequence[EncodableT], args: Sequence[EncodableT]) -> Any:
        return self.script(keys=keys, args=args, client=self.client)

    def send(self, keys: Sequence[EncodableT], args: Sequence[EncodableT]) -> SentCall:
        """The call made now, its reply or error kept for :meth:`SentCall.reply` (redis-py's way waits)."""
        sent = SentCall()
        sent.settle(lambda: self(keys, args))
        return sent


class SentCall:
    """A script call on its way: its reply, or the error it met, once read.

    A DirectScript reads the reply when :meth:`reply` asks for it, or before its connection
    carries another call (the reply is then kept here), so a reply nobody asks for is never
    taken for another call's.
    """

    def __init__(self, read: Callable[[], Any] | None = None) -> None:
        self._read = read
        self._outcome: tuple[bool, Any] | None = None

    @classmethod
    def failed(cls, error: Exception) -> SentCall:
        """A call that never went out: its reply is ``error``."""
        sent = cls()
        sent._outcome = (False, error)
        return sent

    def settle(self, read: Callable[[], Any]) -> None:
        """Read the reply now with ``read``, keeping it or the exception it raised."""
        try:
            self._outcome = (True, read())
        except Exception as error:
            self._outcome = (False, error)

    def reply(self) -> Any:
        """The script's reply.

        Raises:
            redis.ConnectionError, redis.TimeoutError: when the connection was lost.
            redis.ResponseError: when the script failed.
        """
        if self._outcome is None and self._read is not None:
            self._read()
        if self._outcome is None:  # its connection was left to a forked child's own
            raise redis.ConnectionError("the call's reply was left on a connection this process gave up")
        succeeded, value = self._outcome
        if succeeded:
            return value
        raise value


class DirectScript(RedisPyScript):
    """A script called by EVALSHA on a connection of its own.

    A call while another thread is in one goes through redis-py as usual: the connection
    carries one request at a time.
    """

    def __init__(self, client: Redis, name: str) -> None:
        super().__init__(client, name)
        self._own = OwnConnection(client)
        self._busy = threading.Lock()
        # A call sent on the connection whose reply is not read yet, with its keys and arguments.
        self._unread: tuple[SentCall, Sequence[EncodableT], Sequence[EncodableT]] | None = None

    def __call__(self, keys: Sequence[EncodableT], args: Sequence[EncodableT]) -> Any:
        """The script's reply for ``keys`` and ``args``.

        Raises:
            redis.ConnectionError, redis.TimeoutError: when the connection is lost.
            redis.ResponseError: when the script fails.
        """
        if not self._busy.acquire(blocking=False):
            return super().__call__(keys, args)
        try:
            connection = self._ready_connection()
            self._send_evalsha(connection, keys, args)
            return self._read_reply(connection, keys, args)
        finally:
            self._busy.release()

    def send(self, keys: Sequence[EncodableT], args: Sequence[EncodableT]) -> SentCall:
        """Send the call and return at once; :meth:`SentCall.reply` reads its reply.

        The connection carries one call at a time: a call made before the reply was asked for
        reads it first and keeps it for the SentCall.

        Raises:
            redis.ConnectionError, redis.TimeoutError: when the call could not be sent.
        """
        if not self._busy.acquire(blocking=False):
            return super().send(keys, args)
        try:
            connection = self._ready_connection()
            self._send_evalsha(connection, keys, args)
            sent = SentCall(lambda: self._read_unread(sent))
            self._unread = (sent, keys, args)
            return sent
        finally:
            self._busy.release()

    def _read_unread(self, sent: SentCall) -> None:
        with self._busy:
            if self._unread is not None and self._unread[0] is sent:
                self._settle_unread()

    def _settle_unread(self) -> None:
        """Read the reply of the call sent without waiting (the lock held), keeping it in its SentCall."""
        assert self._unread is not None
        (sent, keys, args), self._unread = self._unread, None
        connection = self._own.connection()
        sent.settle(lambda: self._read_reply(connection, keys, args))

    def _ready_connection(self) -> AbstractConnection:
        """The connection, its last reply read (the lock held); a forked child opens its own."""
        if not self._own.held_here():
            self._unread = None  # none, or the parent's call, on the parent's connection
        elif self._unread is not None:
            self._settle_unread()
        return self._own.connection()

    def _send_evalsha(
        self, connection: AbstractConnection, keys: Sequence[EncodableT], args: Sequence[EncodableT]
    ) -> None:
        send_evalsha(connection, self.script.sha, keys, args)

    def _read_reply(
        self, connection: AbstractConnection, keys: Sequence[EncodableT], args: Sequence[EncodableT]
    ) -> Any:
        try:
            return connection.read_response()
        except NoScriptError:
            self.script.sha = self.client.script_load(self.script.script)
            return self._evalsha(connection, keys, args)

    def _evalsha(
        self, connection: AbstractConnection, keys: Sequence[EncodableT], args: Sequence[EncodableT]
    ) -> Any:
        self._send_evalsha(connection, keys, args)
        return connection.read_response()


_scripts: weakref.WeakKeyDictionary[Redis, dict[str, RedisPyScript]] = weakref.WeakKeyDictionary()
_scripts_lock = threading.Lock()


def direct_script(client: Redis, name: str) -> RedisPyScript:
    """The DirectScript ``name`` of ``client``: one per client and script, so one connection each.

    A worker that starts its loop afresh after an outage makes its objects again; its
    connections stay the ones it had. A client whose class changes how commands are sent
    (a test's, an instrumented one) gets redis-py's Script, which goes its way.
    """
    with _scripts_lock:
        scripts = _scripts.setdefault(client, {})
        script = scripts.get(name)
        if script is None:
            direct = sends_commands_as_redis_does(client)
            script = scripts[name] = DirectScript(client, name) if direct else RedisPyScript(client, name)
        return script
