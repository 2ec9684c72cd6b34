"""What every ``redstep`` command shares: the options given before it, the Redis it talks to, ``fail``.

Output for people goes to stdout; with ``--json`` stdout holds only JSON. Logs and errors go
to stderr. Exit status: 0 ok, 1 failed or not found, 2 usage.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

import redis
import typer
from rich.console import Console

from orchestrator.settings import Settings, masked_url
from producer.cli import discovery
from producer.cli.discovery import Resolved

if TYPE_CHECKING:
    from orchestrator.runtime.client import Client

stdout = Console()
stderr = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print only JSON on stdout.")]

HINTS = {
    "default": "; start `redstep up`, or set REDIS_URL to your Redis",
    "up": "; its `redstep up` is still running: is it stuck? (Ctrl-C it and start it again)",
    "configured": "; check REDIS_URL (or --redis-url, or the REDSTEP_REDIS_* parts)",
}
CONNECT_TIMEOUT_SECONDS = 5.0


@dataclass
class RedisTarget:
    """The Redis a command talks to, named (masked) with a hint when it cannot be reached."""

    url: str | None = None
    hint: str = ""


@dataclass
class Shared:
    """The options every command shares; ``None`` means the environment's value (or the default).

    ``redis_url`` is what the user named; when they named nothing, the first command that
    needs Redis finds it (see producer.cli.discovery) and says so once on stderr. ``target``
    is where the app reads which Redis to name when the connection is lost.
    """

    redis_url: str | None
    prefix: str | None
    log_level: str = "INFO"
    target: RedisTarget = field(default_factory=RedisTarget)
    _resolved: Resolved | None = field(default=None, repr=False)

    def resolve(self) -> Resolved:
        """Where Redis is, found once per command; exits with one line when that cannot be told."""
        if self._resolved is None:
            try:
                self._resolved = discovery.resolve(self.redis_url, self.prefix)
            except discovery.DiscoveryError as error:
                raise fail(str(error)) from None
            self.target.url, self.target.hint = self._resolved.url, HINTS[self._resolved.source]
            if self._resolved.note:
                print(f"redstep: {self._resolved.note}", file=sys.stderr, flush=True)
        return self._resolved

    def settings(self) -> Settings:
        """The settings from the environment, with the options given on the command line on top."""
        resolved = self.resolve()
        overrides = {"redis_url": resolved.url, "prefix": self.prefix or resolved.prefix}
        return Settings(**{key: value for key, value in overrides.items() if value})

    def connect(self, timeout: float | None = None) -> tuple[Settings, redis.Redis]:
        """The settings and a Redis connection; ``timeout`` bounds each reply (None: no bound).

        Connecting itself is always bounded, so a wrong host or a ``rediss://`` URL pointed at
        a plain server fails within seconds instead of hanging.
        """
        settings = self.settings()
        return settings, redis_from_url(settings.redis_url, timeout)


def redis_from_url(url: str, timeout: float | None = None) -> redis.Redis:
    """A client for ``url``; a URL redis-py cannot read exits with one line naming what is wrong."""
    try:
        return redis.Redis.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            socket_timeout=timeout,
            decode_responses=False,
        )
    except (ValueError, TypeError) as error:
        raise fail(f"invalid Redis URL {masked_url(url)}: {error}") from None


def runtime_client(ctx: typer.Context) -> Client:
    """The runtime's :class:`Client` on the command's Redis, each reply bounded to 10 s."""
    from orchestrator.runtime.client import Client  # imported late: a heavy module

    settings, client = ctx.obj.connect(timeout=10)
    return Client(client, settings)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` on stderr and return the exit to raise."""
    # Plain print: rich would wrap long lines at the terminal width, splitting messages for grep.
    print(message, file=sys.stderr, flush=True)
    return typer.Exit(code)
