"""``redstep events list | show | replay``: a way out for events the orchestrators could not apply.

Thin commands over :mod:`orchestrator.runtime.admin`. ``events`` are the events the
orchestrators moved aside (malformed, poison, or refused by Redis), each with its reason and
delivery count; ``replay`` puts them back on the event stream once their cause is fixed.
Exit status: 0 ok, 1 not found, 2 usage.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from producer.cli import views

if TYPE_CHECKING:
    from orchestrator.runtime.admin import MovedAside, MovedAsideEvents

events_app = typer.Typer(help="Inspect the events the orchestrators moved aside, and replay them.")

JsonOption = Annotated[bool, typer.Option("--json", help="Print only JSON on stdout.")]


def register(app: typer.Typer) -> None:
    """Add the ``events`` command group to ``app``."""
    app.add_typer(events_app, name="events", no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    print(message, file=sys.stderr, flush=True)
    return typer.Exit(1)


def _moved_aside(ctx: typer.Context) -> MovedAsideEvents:
    from orchestrator.runtime.admin import MovedAsideEvents  # imported late: a heavy module

    settings, client = ctx.obj.connect(timeout=10)
    return MovedAsideEvents(client, settings)


def _table(events: list[MovedAside]) -> Table:
    table = Table(
        "id", "execution", "type", "deliveries", "reason", title=f"{len(events)} event(s) moved aside"
    )
    for event in events:
        table.add_row(
            event.id, event.execution or "", event.event_type or "", str(event.delivery_count), event.reason
        )
    return table


@events_app.command("list")
def list_command(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1)] = 1000,
    json_output: JsonOption = False,
) -> None:
    """List the events moved aside, oldest first: id, execution, type, delivery count and reason."""
    events = _moved_aside(ctx).list(limit)
    if json_output:
        views.print_json([event.to_dict() for event in events])
    else:
        Console().print(_table(events))


@events_app.command("show")
def show_command(
    ctx: typer.Context,
    moved_id: Annotated[str, typer.Argument(metavar="ID", help="The event's id (from events list).")],
    json_output: JsonOption = False,
) -> None:
    """Show one moved-aside event, its fields as they were."""
    event = _moved_aside(ctx).show(moved_id)
    if event is None:
        raise _fail(f"moved-aside event {moved_id} not found (see `redstep events list`)")
    if json_output:
        views.print_json(event.to_dict())
    else:
        Console().print(views.mapping_table(f"moved-aside event {moved_id}", event.to_dict()))


@events_app.command("replay")
def replay_command(
    ctx: typer.Context,
    moved_ids: Annotated[list[str] | None, typer.Argument(metavar="[ID]...", help="The events.")] = None,
    all_events: Annotated[bool, typer.Option("--all", help="Replay every moved-aside event.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Put moved-aside events back on the event stream, unchanged, once their cause is fixed."""
    if bool(moved_ids) == all_events:
        raise typer.BadParameter("give the ids of the events to replay, or --all (not both)")
    from orchestrator.runtime.optimistic import CommitConflict

    try:
        replayed = _moved_aside(ctx).replay(None if all_events else moved_ids)
    except CommitConflict as error:
        raise _fail(f"cannot replay: {error}; try again") from None
    missing = [] if all_events else [i for i in moved_ids or [] if i not in replayed]
    if json_output:
        views.print_json({"replayed": len(replayed), "ids": replayed, "not_found": missing})
    else:
        print(f"replayed {len(replayed)} event(s)")
    if missing:
        raise _fail(f"{len(missing)} moved-aside event(s) not found: {' '.join(missing)}")
