"""``redstep status`` and ``redstep check``: how the stack is doing, for people and for healthchecks.

Thin commands over :meth:`orchestrator.runtime.client.Client.status` and ``healthy``.
"""

from __future__ import annotations

import redis
import typer

from orchestrator.settings import masked_url
from producer.cli import views
from producer.cli.common import JsonOption, fail, runtime_client, stdout


def register(app: typer.Typer) -> None:
    """Add the ``status`` and ``check`` commands to ``app``."""
    app.command("status")(status)
    app.command("check")(check)


def status(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Queue depths, dead letters, workers, executions by status."""
    summary = runtime_client(ctx).status()
    if json_output:
        views.print_json(summary)
    else:
        views.print_status(stdout, summary)


def check(ctx: typer.Context) -> None:
    """Exit 0 only when Redis answers and the stack is healthy (for compose healthchecks)."""
    settings = ctx.obj.settings()
    try:
        healthy, message = runtime_client(ctx).healthy()
    except redis.RedisError as error:
        healthy, message = False, f"Redis unreachable at {masked_url(settings.redis_url)}: {error}"
    verdict = "ok" if healthy else "unhealthy"
    raise fail(f"{verdict}: {message} ({masked_url(settings.redis_url)})", 0 if healthy else 1)
