"""A private redis-server process, for ``redstep up`` without ``REDIS_URL`` and for tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis


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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server child process on 127.0.0.1, stopped by :meth:`stop` or on ``with`` exit."""

    def __init__(
        self,
        port: int | None = None,
        *,
        data_dir: Path | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self._owned_dir = None if data_dir else tempfile.TemporaryDirectory(prefix="redstep-redis-")
        self.data_dir = data_dir or Path(self._owned_dir.name)  # type: ignore[union-attr]
        self.extra_args = extra_args or []
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers PING."""
        command = [
            find_redis_server(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "no",
            *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.02)
            finally:
                client.close()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its data unless the caller owns it."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._owned_dir:
            self._owned_dir.cleanup()
            self._owned_dir = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
