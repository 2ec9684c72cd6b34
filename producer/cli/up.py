"""``redstep up``: the whole stack in one terminal, found by the user's other terminals.

A thin command over :class:`producer.cli.stack.Stack` (the child processes) and
:mod:`producer.cli.discovery` (the runtime file other terminals find the stack by).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import redis
import typer

from orchestrator.settings import Settings, masked_url
from producer.cli import discovery
from producer.cli.common import Shared, fail, redis_from_url, stdout
from producer.cli.stack import Stack, stop_on_signals

log = logging.getLogger("redstep.up")


def register(app: typer.Typer) -> None:
    """Add the ``up`` command to ``app``."""
    app.command("up")(up)


def up(
    ctx: typer.Context,
    workers: Annotated[int, typer.Option("--workers", "-w", min=0, envvar="REDSTEP_WORKERS")] = 1,
    functions: Annotated[list[str] | None, typer.Option("--functions", help="Passed to each worker.")] = None,
    ready_timeout: Annotated[
        float, typer.Option("--ready-timeout", min=1, help="Give up when not ready within this many seconds.")
    ] = 60.0,
) -> None:
    """Run the whole stack here: Redis (REDIS_URL, else a private one), an orchestrator, N workers.

    Other terminals of this user find the stack by themselves (a runtime file, removed on exit).
    """
    shared: Shared = ctx.obj
    # Fails early on a bad setting, before anything starts; up never goes looking for another stack.
    settings = Settings(
        **{k: v for k, v in {"redis_url": shared.redis_url, "prefix": shared.prefix}.items() if v}
    )
    running = discovery.running_up_for(settings.prefix)
    if running is not None:
        raise fail(
            f"a redstep up for prefix {settings.prefix} is already running (pid {running.pid},"
            f" {masked_url(running.url)}): use it, stop it, or start this one with another REDSTEP_PREFIX"
        )
    stack = Stack(workers=workers, redis_url=shared.redis_url or None)
    if shared.prefix:
        stack.env["REDSTEP_PREFIX"] = shared.prefix
    for module in functions or []:
        stack.worker_args += ["--functions", module]
    stop = threading.Event()
    restore = stop_on_signals(stop)
    code = 1
    published = None
    try:
        stack.start()
        shared.target.url = stack.redis_url
        published = _publish(stack.redis_url or "", settings.prefix)
        _print_stack(stack, settings)
        problem = stack.wait_ready(_stack_is_ready(stack, settings), stop, ready_timeout)
        if problem:
            log.error("%s; stopping the stack", problem)
        elif not stop.is_set():
            _print_next_steps(stack, settings, published)
            code = stack.run_until(stop)
        else:
            code = 0
    finally:
        if published:
            discovery.remove_runtime_file(published)
        stack.stop()
        restore()
    print("stack stopped", file=sys.stderr)
    raise typer.Exit(code)


def _publish(url: str, prefix: str) -> Path | None:
    """Write the runtime file other terminals find this stack by; a failure only costs them that."""
    try:
        return discovery.write_runtime_file(url, prefix)
    except OSError as error:
        where = discovery.runtime_file(prefix)
        log.warning("cannot write %s (%s); other terminals need REDIS_URL to find this stack", where, error)
        return None


def _stack_is_ready(stack: Stack, settings: Settings) -> Callable[[], bool]:
    """Whether the stack's orchestrator beats (workers register as they come; none is required)."""
    from orchestrator.runtime.client import Client  # imported late: a heavy module

    client = Client(redis_from_url(stack.redis_url or "", 2.0), settings)

    def ready() -> bool:
        try:
            return client.healthy()[0]
        except redis.RedisError:
            return False

    return ready


def _print_stack(stack: Stack, settings: Settings) -> None:
    where = "private redis-server" if stack.server else "REDIS_URL"
    stdout.print(f"redis         {masked_url(stack.redis_url or '')} ({where})", highlight=False)
    stdout.print(f"prefix        {settings.prefix}", highlight=False)
    stdout.print(f"source queue  {settings.source_queue} -> {settings.state_machine}", highlight=False)
    stdout.print(f"topic         {settings.topic}", highlight=False)
    for child in stack.children:
        stdout.print(f"{child.name:<13} pid {child.pid}", highlight=False)


def _print_next_steps(stack: Stack, settings: Settings, published: Path | None) -> None:
    """The two lines another shell needs: how it finds this stack, and what to run there."""
    url = stack.redis_url or ""
    exported = f"export REDIS_URL={masked_url(url)}"
    if settings.prefix != discovery.DEFAULT_PREFIX:
        exported += f" REDSTEP_PREFIX={settings.prefix}"
    hidden = "" if masked_url(url) == url else " (the password is yours to fill in)"
    found = f"your other terminals find this stack via {published}" if published else "needed everywhere"
    print(f"{exported}   # elsewhere{hidden}; {found}")
    print("next: redstep subscribe &  |  redstep produce producer/data/demo25.json  |  Ctrl-C stops all")
    sys.stdout.flush()
