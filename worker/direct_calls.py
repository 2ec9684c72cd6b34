"""A worker's script calls on a connection of their own, past redis-py's per-command machinery.

redis-py sends each command through its pool, its retry wrapper and its observability hooks:
about 25 us a call in a tight loop here (PING: 38 us, against 18 us on a bare socket), and a
worker makes two script calls a job (take_job.lua, append_reports.lua). A DirectScript keeps
one connection of the client's pool for itself and sends EVALSHA on it: the same command, the
same reply, the same errors. A lost connection raises redis.ConnectionError or TimeoutError as
before, having dropped the socket, which the next call opens again; the callers' own retries
(orchestrator.protocol.reconnect) wait out an outage as they did. A script Redis lost (a restart
without persistence, SCRIPT FLUSH) is loaded again, as redis-py's Script does.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from redis import Redis
from redis.commands.core import Script
from redis.connection import AbstractConnection
from redis.exceptions import NoScriptError
from redis.typing import EncodableT

from orchestrator.protocol.scripts import lua_script


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


class DirectScript(RedisPyScript):
    """A script called by EVALSHA on a connection of its own.

    A call while another thread is in one goes through redis-py as usual: the connection
    carries one request at a time.
    """

    def __init__(self, client: Redis, name: str) -> None:
        super().__init__(client, name)
        self._connection: AbstractConnection | None = None
        self._pid = 0
        self._busy = threading.Lock()

    def __call__(self, keys: Sequence[EncodableT], args: Sequence[EncodableT]) -> Any:
        """The script's reply for ``keys`` and ``args``.

        Raises:
            redis.ConnectionError, redis.TimeoutError: when the connection is lost.
            redis.ResponseError: when the script fails.
        """
        if not self._busy.acquire(blocking=False):
            return super().__call__(keys, args)
        try:
            connection = self._connection
            if connection is None or self._pid != os.getpid():  # a forked child makes its own
                connection = self._own_connection()
            try:
                return self._evalsha(connection, keys, args)
            except NoScriptError:
                self.script.sha = self.client.script_load(self.script.script)
                return self._evalsha(connection, keys, args)
        finally:
            self._busy.release()

    def _evalsha(
        self, connection: AbstractConnection, keys: Sequence[EncodableT], args: Sequence[EncodableT]
    ) -> Any:
        connection.send_command("EVALSHA", self.script.sha, len(keys), *keys, *args)
        return connection.read_response()

    def _own_connection(self) -> AbstractConnection:
        pool = self.client.connection_pool
        try:
            connection = pool.get_connection()
        except TypeError:  # redis-py before 5.3 wants a command's name
            connection = pool.get_connection("EVALSHA")  # type: ignore[call-arg]
        self._connection, self._pid = connection, os.getpid()
        return connection


_scripts: weakref.WeakKeyDictionary[Redis, dict[str, RedisPyScript]] = weakref.WeakKeyDictionary()
_scripts_lock = threading.Lock()


def sends_commands_as_redis_does(client: Redis) -> bool:
    """Whether ``client``'s class sends commands as redis-py's own Redis does (no override in between)."""
    kind = type(client)
    return kind is Redis or (kind.execute_command is Redis.execute_command and kind.evalsha is Redis.evalsha)


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
