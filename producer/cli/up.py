"""``redstep up``: the whole stack in one terminal, found by the user's other terminals.

A thin command over :class:`producer.cli.stack.Stack` (the child processes),
:mod:`producer.cli.discovery` (the runtime file other terminals find the stack by) and
:mod:`producer.cli.up_api` (the API's address and key pair, and the lines that name them).
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
from producer.cli.up_api import DEFAULT_API_PORT, ApiPlan, ApiPlanError, api_is_ready, export_lines, plan_api

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
    api_port: Annotated[
        int,
        typer.Option(
            "--api-port",
            min=0,
            max=65535,
            envvar="REDSTEP_API_PORT",
            help="The API's port (0: any free one).",
        ),
    ] = DEFAULT_API_PORT,
    api_host: Annotated[
        str, typer.Option("--api-host", envvar="REDSTEP_API_HOST", help="The address the API listens on.")
    ] = "127.0.0.1",
    no_api: Annotated[bool, typer.Option("--no-api", help="Start no API (redstep serve).")] = False,
) -> None:
    """Run the whole stack here: Redis (REDIS_URL, else a private one), an orchestrator, N workers, the API.

    Other terminals of this user find the stack by themselves (a runtime file, removed on exit).

    The API is `redstep serve` on --api-host:--api-port. With no REDSTEP_ACCESS_KEY_ID and
    REDSTEP_SECRET_ACCESS_KEY configured, it gets a random key pair, printed once as export lines.
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
    try:
        api = None if no_api else plan_api(api_host, api_port)
    except ApiPlanError as error:
        raise fail(f"redstep up: {error}", 2) from None
    stack = Stack(workers=workers, redis_url=shared.redis_url or None)
    if api is not None:
        stack.api_args, stack.api_env = api.serve_args(), api.env
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
        _print_stack(stack, settings, api)
        problem = stack.wait_ready(_stack_is_ready(stack, settings, api), stop, ready_timeout)
        if problem:
            log.error("%s; stopping the stack", problem)
        elif not stop.is_set():
            _print_next_steps(stack, settings, published, api)
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


def _stack_is_ready(stack: Stack, settings: Settings, api: ApiPlan | None) -> Callable[[], bool]:
    """Whether the stack's orchestrator beats and its API answers (workers register as they come;
    none is required)."""
    from orchestrator.runtime.client import Client  # imported late: a heavy module

    client = Client(redis_from_url(stack.redis_url or "", 2.0), settings)
    api_ready = api_is_ready(api) if api is not None else lambda: True

    def ready() -> bool:
        try:
            return client.healthy()[0] and api_ready()
        except redis.RedisError:
            return False

    return ready


def _print_stack(stack: Stack, settings: Settings, api: ApiPlan | None) -> None:
    where = "private redis-server" if stack.server else "REDIS_URL"
    stdout.print(f"redis         {masked_url(stack.redis_url or '')} ({where})", highlight=False)
    stdout.print(f"prefix        {settings.prefix}", highlight=False)
    stdout.print(f"source queue  {settings.source_queue} -> {settings.state_machine}", highlight=False)
    stdout.print(f"topic         {settings.topic}", highlight=False)
    if api is not None:
        keys = "a new key pair" if api.secret is not None else "your keys"
        stdout.print(f"api           {api.endpoint} (region {api.region}, {keys})", highlight=False)
    for child in stack.children:
        stdout.print(f"{child.name:<13} pid {child.pid}", highlight=False)


def _print_next_steps(stack: Stack, settings: Settings, published: Path | None, api: ApiPlan | None) -> None:
    """What another shell needs: how it finds this stack and its API, and what to run there.

    The only place a generated secret is ever written: this terminal, once.
    """
    url = stack.redis_url or ""
    exported = f"export REDIS_URL={masked_url(url)}"
    if settings.prefix != discovery.DEFAULT_PREFIX:
        exported += f" REDSTEP_PREFIX={settings.prefix}"
    hidden = "" if masked_url(url) == url else " (the password is yours to fill in)"
    found = f"your other terminals find this stack via {published}" if published else "needed everywhere"
    print(f"{exported}   # elsewhere{hidden}; {found}")
    if api is not None:
        print("\n".join(export_lines(api)))
    print("next: redstep subscribe &  |  redstep produce producer/data/demo25.json  |  Ctrl-C stops all")
    sys.stdout.flush()
