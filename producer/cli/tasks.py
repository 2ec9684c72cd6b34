"""``redstep send-task-success | send-task-failure | send-task-heartbeat``: answer a callback task.

Thin commands over :mod:`orchestrator.runtime.callbacks`. They read ``REDIS_URL`` and
``REDSTEP_PREFIX`` through the settings (or the main app's ``--redis-url``/``--prefix``).
Exit status: 0 sent, 1 the token is not waited for (or Redis is unreachable), 2 a
malformed token or ``--output`` that is not JSON.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, Any

import redis
import typer

from orchestrator.protocol.decoding import strict_loads
from orchestrator.runtime import callbacks
from orchestrator.settings import Settings, masked_url

TokenArgument = Annotated[str, typer.Argument(help="The task token ($$.Task.Token) the task handed out.")]


def register(app: typer.Typer) -> None:
    """Add the three commands to ``app``."""
    app.command("send-task-success")(send_task_success)
    app.command("send-task-failure")(send_task_failure)
    app.command("send-task-heartbeat")(send_task_heartbeat)


def send_task_success(
    ctx: typer.Context,
    token: TokenArgument,
    output: Annotated[str, typer.Option("--output", help="The task's result, as JSON.")] = "{}",
) -> None:
    """Complete a .waitForTaskToken task with OUTPUT as its result."""
    try:
        value = strict_loads(output)
    except ValueError as exc:
        raise typer.BadParameter(f"--output is not valid JSON: {exc}", param_hint="--output") from None
    _answer(ctx, lambda r, s: callbacks.send_task_success(r, s, token, value), "success")


def send_task_failure(
    ctx: typer.Context,
    token: TokenArgument,
    error: Annotated[
        str | None, typer.Option("--error", help="The error name Retry and Catch match.")
    ] = None,
    cause: Annotated[str | None, typer.Option("--cause", help="A longer description of the failure.")] = None,
) -> None:
    """Fail a .waitForTaskToken task with ERROR and CAUSE."""
    _answer(ctx, lambda r, s: callbacks.send_task_failure(r, s, token, error, cause), "failure")


def send_task_heartbeat(ctx: typer.Context, token: TokenArgument) -> None:
    """Report that a .waitForTaskToken task is still being worked on (restarts its HeartbeatSeconds)."""
    _answer(ctx, lambda r, s: callbacks.send_task_heartbeat(r, s, token), "heartbeat")


def _connect(ctx: typer.Context) -> tuple[Settings, redis.Redis]:
    # On the main app, its --redis-url/--prefix options (kept in ctx.obj) win over the environment.
    shared = getattr(ctx, "obj", None)
    if callable(getattr(shared, "connect", None)):
        return shared.connect(timeout=10)  # type: ignore[no-any-return, union-attr]
    settings = Settings()
    return settings, redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5, socket_timeout=10)


def _answer(ctx: typer.Context, send: Callable[[redis.Redis, Settings], Any], what: str) -> None:
    settings, connection = _connect(ctx)
    try:
        send(connection, settings)
    except callbacks.InvalidToken as exc:
        raise typer.BadParameter(str(exc), param_hint="TOKEN") from None
    except (callbacks.TaskDoesNotExist, callbacks.TaskTimedOut) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        raise typer.Exit(1) from None
    except redis.ConnectionError as exc:
        print(f"cannot reach Redis at {masked_url(settings.redis_url)}: {exc}", file=sys.stderr, flush=True)
        raise typer.Exit(1) from None
    finally:
        connection.close()
    print(f"task {what} sent", file=sys.stderr, flush=True)
