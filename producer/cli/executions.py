"""``redstep executions list | describe | history | redrive | stop``: state machine executions.

Thin commands over :class:`orchestrator.runtime.client.Client` and, for ``stop`` (AWS's
StopExecution), :mod:`orchestrator.runtime.admin`. Exit status: 0 ok, 1 not found (or a stop
not applied in time), 2 usage.
"""

from __future__ import annotations

from typing import Annotated

import typer

from producer.cli import views
from producer.cli.common import JsonOption, fail, runtime_client, stdout

executions_app = typer.Typer(help="Inspect state machine executions.", no_args_is_help=True)

STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def register(app: typer.Typer) -> None:
    """Add the ``executions`` command group to ``app``."""
    app.add_typer(executions_app, name="executions")


@executions_app.command("list")
def executions_list(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help=f"One of {', '.join(STATUSES)}.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 1000,
    json_output: JsonOption = False,
) -> None:
    """List executions, newest first."""
    if status and status.upper() not in STATUSES:
        raise typer.BadParameter(f"status must be one of {', '.join(STATUSES)}", param_hint="--status")
    executions = runtime_client(ctx).list_executions(status=status.upper() if status else None, limit=limit)
    if json_output:
        views.print_json(executions)
    else:
        stdout.print(views.executions_table(executions))


@executions_app.command("describe")
def executions_describe(ctx: typer.Context, name: str, json_output: JsonOption = False) -> None:
    """Show one execution: status, input, output, error and cause."""
    execution = runtime_client(ctx).describe(name)
    if execution is None:
        raise fail(f"execution {name} not found")
    if json_output:
        views.print_json(execution)
    else:
        stdout.print(views.mapping_table(f"execution {name}", execution))


@executions_app.command("history")
def executions_history(ctx: typer.Context, name: str, json_output: JsonOption = False) -> None:
    """Show one execution's event history, as GetExecutionHistory shapes it."""
    client = runtime_client(ctx)
    if client.describe(name) is None:
        raise fail(f"execution {name} not found")
    events = client.history(name)
    if json_output:
        views.print_json(events)
    else:
        stdout.print(views.history_table(events))


@executions_app.command("redrive")
def executions_redrive(ctx: typer.Context, name: str, json_output: JsonOption = False) -> None:
    """Restart a FAILED, TIMED_OUT or ABORTED execution from the state where it stopped."""
    from orchestrator.runtime.client import ExecutionNotFound, NotRedrivable
    from orchestrator.runtime.optimistic import CommitConflict

    try:
        execution = runtime_client(ctx).redrive(name)
    except ExecutionNotFound:
        raise fail(f"execution {name} not found") from None
    except (NotRedrivable, CommitConflict) as error:
        raise fail(f"cannot redrive: {error}") from None
    if json_output:
        views.print_json(execution)
    else:
        print(f"execution {name} redriven (redrive {execution['redriveCount']}): {execution['status']}")


@executions_app.command("stop")
def stop_command(
    ctx: typer.Context,
    name: str,
    error: Annotated[str | None, typer.Option(help="The error code recorded (ExecutionAborted).")] = None,
    cause: Annotated[str | None, typer.Option(help="A longer explanation recorded with it.")] = None,
    wait: Annotated[
        float,
        typer.Option(min=0, help="Wait this many seconds for the orchestrators to apply it (0: do not)."),
    ] = 30.0,
    json_output: JsonOption = False,
) -> None:
    """Stop (abort) a running execution, as StopExecution: ABORTED, with the error and cause given."""
    from orchestrator.runtime.admin import ExecutionNotFound, stop_execution, wait_until_finished
    from orchestrator.runtime.client import Client

    settings, client = ctx.obj.connect(timeout=10)
    try:
        stopped = stop_execution(client, settings, name, error, cause)
    except ExecutionNotFound:
        raise fail(f"execution {name} not found") from None
    except ValueError as problem:
        raise typer.BadParameter(str(problem)) from None
    described = Client(client, settings).describe(name)
    if stopped.requested and wait > 0:
        described = wait_until_finished(Client(client, settings), name, wait) or described
    if json_output:
        views.print_json({"requested": stopped.requested, "execution": described})
    elif not stopped.requested:
        print(f"execution {name} already ended {stopped.status}: nothing to stop")
    elif described is not None and described["status"] != "RUNNING":
        print(f"execution {name} stopped: {described['status']}")
    else:
        print(f"stop of execution {name} requested")
    if stopped.requested and wait > 0 and (described is None or described["status"] == "RUNNING"):
        raise fail(
            f"the stop of {name} was not applied within {wait:g}s: is an orchestrator running "
            "(`redstep status`)? The request stays queued and applies when one runs"
        )
