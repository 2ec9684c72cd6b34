"""``redstep orchestrator`` and ``redstep worker``: one long-running process of each role.

The only place the CLI imports :mod:`worker`: ``redstep worker`` is a worker process.
"""

from __future__ import annotations

import threading
from typing import Annotated

import typer

from producer.cli.common import Shared
from producer.cli.stack import stop_on_signals


def register(app: typer.Typer) -> None:
    """Add the ``orchestrator`` and ``worker`` commands to ``app``."""
    app.command("orchestrator")(orchestrator)
    app.command("worker")(worker)


def orchestrator(ctx: typer.Context) -> None:
    """Run one orchestrator: event loop, timers, source-queue polling, notifications."""
    from orchestrator.runtime.loop import run_orchestrator  # imported late: a heavy module

    stop = threading.Event()
    restore = stop_on_signals(stop)
    try:
        run_orchestrator(ctx.obj.settings(), stop)
    finally:
        restore()


def worker(
    ctx: typer.Context,
    functions: Annotated[
        list[str] | None,
        typer.Option("--functions", help="A Python file or module that registers functions (repeatable)."),
    ] = None,
    burst: Annotated[bool, typer.Option("--burst", help="Exit once the queue is empty.")] = False,
    name: Annotated[str | None, typer.Option("--name", help="The worker's name in Redis.")] = None,
) -> None:
    """Run one worker process: the Lambda role, pulling tasks from RQ."""
    from worker.running import run_worker  # imported late: a heavy module

    shared: Shared = ctx.obj
    run_worker(
        shared.settings(), functions=functions or [], burst=burst, name=name, logging_level=shared.log_level
    )
