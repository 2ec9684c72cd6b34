"""A private redis-server process, for ``redstep up`` without ``REDIS_URL`` and for tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import redis

PORT_ATTEMPTS = 5  # ports tried when the one chosen is taken before the server binds it
APPENDFSYNC_POLICIES = ("always", "everysec", "no")


def find_redis_server() -> str:
    """The redis-server binary: the one on PATH, else the one the ``redis-server`` wheel ships.

    Raises:
        FileNotFoundError: when neither exists, with how to get one.
    """
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redis_server  # type: ignore[import-not-found]

        return str(redis_server.REDIS_SERVER_PATH)
    except ImportError:
        pass
    raise FileNotFoundError(
        "redis-server not found: install it (apt-get install redis-server, or pip install redis-server) "
        "or point REDIS_URL at a running Redis"
    )


def tls_unsupported_reason(binary: str | None = None) -> str | None:
    """Why ``binary`` (default: :func:`find_redis_server`) cannot serve TLS, or ``None`` when it can.

    A redis-server built without TLS refuses ``tls-port`` as a bad directive while reading its
    configuration; one built with TLS reads it and then exits at once, as nothing is to be
    listened on. Either way the probe ends within moments and leaves no process behind.
    """
    command = [binary or find_redis_server(), "--port", "0", "--tls-port", "0", "--save", ""]
    probe = subprocess.run(command, capture_output=True, text=True, timeout=10)
    output = probe.stdout + probe.stderr
    if "Bad directive" in output and "tls-port" in output:
        return "redis-server was built without TLS support"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ServerTls:
    """The PEM files of a server that speaks only TLS.

    Attributes:
        cert_file: the server's certificate.
        key_file: the server certificate's private key.
        ca_file: the CA that signed it; clients verify the server against this file.
    """

    cert_file: Path
    key_file: Path
    ca_file: Path


class RedisServer:
    """A redis-server child process on 127.0.0.1, stopped by :meth:`stop` or on ``with`` exit.

    Args:
        port: the port to listen on (with ``tls``, the TLS port); a free one by default.
        data_dir: where the server keeps its files; a temporary directory, removed on stop,
            by default.
        extra_args: more ``--name value`` options for redis-server, e.g. ``--requirepass``
            or ``--aclfile``.
        username: the ACL user that :attr:`url` names and the readiness PING logs in as.
        password: the password that :attr:`url` carries and the readiness PING sends; the
            server is told to require it only through ``extra_args``.
        tls: serve TLS only, with these files, and let clients in without a certificate.
        aof: keep an append-only file in ``data_dir``, so a server restarted on the same
            directory gets its data back.
        appendfsync: with ``aof``, when Redis fsyncs it: ``always``, ``everysec`` or ``no``.

    Raises:
        ValueError: ``appendfsync`` is none of Redis's three policies.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        data_dir: Path | None = None,
        extra_args: list[str] | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: ServerTls | None = None,
        aof: bool = False,
        appendfsync: str = "everysec",
    ) -> None:
        if appendfsync not in APPENDFSYNC_POLICIES:
            raise ValueError(
                f"appendfsync {appendfsync!r} is not a Redis fsync policy: "
                f"use one of {', '.join(APPENDFSYNC_POLICIES)}"
            )
        self._chose_port = not port
        self.port = port or free_port()
        self._owned_dir = None if data_dir else tempfile.TemporaryDirectory(prefix="redstep-redis-")
        self.data_dir = data_dir or Path(self._owned_dir.name)  # type: ignore[union-attr]
        self.extra_args = extra_args or []
        self.username = username
        self.password = password
        self.tls = tls
        self.aof = aof
        self.appendfsync = appendfsync
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL that reaches this server: its credentials, and for TLS its CA, included."""
        credentials = ""
        if self.username or self.password:
            user = quote(self.username or "", safe="")
            secret = f":{quote(self.password, safe='')}" if self.password else ""
            credentials = f"{user}{secret}@"
        if self.tls is None:
            return f"redis://{credentials}127.0.0.1:{self.port}/0"
        query = urlencode({"ssl_ca_certs": str(self.tls.ca_file)})
        return f"rediss://{credentials}127.0.0.1:{self.port}/0?{query}"

    def _listen_args(self) -> list[str]:
        if self.tls is None:
            return ["--port", str(self.port)]
        return [
            "--port", "0",  # no plain-text listener at all: every client must speak TLS
            "--tls-port", str(self.port),
            "--tls-cert-file", str(self.tls.cert_file),
            "--tls-key-file", str(self.tls.key_file),
            "--tls-ca-cert-file", str(self.tls.ca_file),
            "--tls-auth-clients", "no",
        ]  # fmt: skip

    def _persistence_args(self) -> list[str]:
        if not self.aof:
            return ["--appendonly", "no"]
        return ["--appendonly", "yes", "--appendfsync", self.appendfsync]

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers PING (over TLS and logged in, as :attr:`url` says).

        A free port can be taken between choosing it and binding it (another server starting
        at the same moment). Then the PING may reach that other server, so the answering
        server's pid is checked; on a port chosen here, a new one is tried.
        """
        for _ in range(PORT_ATTEMPTS - 1 if self._chose_port else 0):
            if self._start_once(timeout):
                return self
            self.port = free_port()
        if self._start_once(timeout):
            return self
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def _start_once(self, timeout: float) -> bool:
        """Start the server; True once it answers, False when another process holds the port."""
        command = [
            find_redis_server(),
            *self._listen_args(),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--save", "",
            *self._persistence_args(),
            *self.extra_args,
        ]  # fmt: skip
        # A session of its own: a terminal's Ctrl-C reaches `redstep up`, which stops the
        # workers and orchestrators before it stops Redis, instead of Redis going first.
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        try:
            while True:
                try:
                    client.ping()
                    if self._answered_by_us(client):
                        return True
                except redis.ConnectionError:
                    pass
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self._stop_process()
                    return False
                time.sleep(0.02)
        finally:
            client.close()

    def _answered_by_us(self, client: redis.Redis) -> bool:
        try:
            answering = client.info("server").get("process_id")
        except redis.ResponseError:
            return self.process is not None and self.process.poll() is None  # INFO refused by an ACL
        return self.process is not None and answering == self.process.pid

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its data unless the caller owns it."""
        self._stop_process()
        if self._owned_dir:
            self._owned_dir.cleanup()
            self._owned_dir = None

    def _stop_process(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL the server, as an OOM kill would: no shutdown, no final fsync; keeps its data."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
