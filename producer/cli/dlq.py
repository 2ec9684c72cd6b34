"""``redstep dlq list | show | redrive | purge``: the dead-letter queues of the source queues.

Thin commands over :class:`orchestrator.runtime.dead_letters.DeadLetters`. Exit status: 0 ok,
1 a letter not found (or a purge not confirmed), 2 usage.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from producer.cli import views

if TYPE_CHECKING:
    from orchestrator.runtime.dead_letters import DeadLetter, DeadLetters

dlq_app = typer.Typer(help="Inspect dead letters, send them back to their queue, or drop them.")

QueueOption = Annotated[str | None, typer.Option("--queue", "-q", help="Only this source queue.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print only JSON on stdout.")]


def register(app: typer.Typer) -> None:
    """Add the ``dlq`` command group to ``app``."""
    app.add_typer(dlq_app, name="dlq", no_args_is_help=True)


def _dead_letters(ctx: typer.Context) -> DeadLetters:
    from orchestrator.runtime.dead_letters import DeadLetters  # imported late: a heavy module

    settings, client = ctx.obj.connect(timeout=10)
    return DeadLetters(client, settings)


def _fail(message: str) -> typer.Exit:
    print(message, file=sys.stderr, flush=True)
    return typer.Exit(1)


def _table(letters: list[DeadLetter]) -> Table:
    table = Table("id", "queue", "message id", "received", "reason")
    for letter in letters:
        # Anyone who can write to Redis wrote these: shown escaped, never read as rich markup.
        cells = (letter.id, letter.queue, letter.message_id, str(letter.receive_count), letter.reason)
        table.add_row(*(Text(views.printable(str(cell))) for cell in cells))
    return table


@dlq_app.command("list")
def list_command(
    ctx: typer.Context,
    queue: QueueOption = None,
    limit: Annotated[int, typer.Option(min=1)] = 1000,
    json_output: JsonOption = False,
) -> None:
    """List dead letters, oldest first: id, queue, message id, receive count and reason."""
    letters = _dead_letters(ctx).list(queue, limit)
    if json_output:
        views.print_json([letter.to_dict() for letter in letters])
    else:
        Console().print(_table(letters))


@dlq_app.command("show")
def show_command(
    ctx: typer.Context,
    letter_id: Annotated[str, typer.Argument(metavar="ID", help="The dead letter's id (from dlq list).")],
    queue: QueueOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show one dead letter, body included."""
    letter = _dead_letters(ctx).show(letter_id, queue)
    if letter is None:
        raise _fail(f"dead letter {letter_id} not found")
    if json_output:
        views.print_json(letter.to_dict())
    else:
        Console().print(views.mapping_table(f"dead letter {letter_id}", letter.to_dict()))


@dlq_app.command("redrive")
def redrive_command(
    ctx: typer.Context,
    letter_ids: Annotated[list[str] | None, typer.Argument(metavar="[ID]...", help="The letters.")] = None,
    all_letters: Annotated[bool, typer.Option("--all", help="Send every dead letter.")] = False,
    queue: QueueOption = None,
    json_output: JsonOption = False,
) -> None:
    """Send dead letters back to their queue with their message ids, which name their executions."""
    if bool(letter_ids) == all_letters:
        raise typer.BadParameter("give the ids of the letters to redrive, or --all (not both)")
    from orchestrator.runtime.optimistic import CommitConflict

    try:
        sent = _dead_letters(ctx).redrive(None if all_letters else letter_ids, queue)
    except CommitConflict as error:
        raise _fail(f"cannot redrive: {error}; try again") from None
    missing = 0 if all_letters else len(letter_ids or []) - len(sent)
    if json_output:
        views.print_json({"redriven": len(sent), "message_ids": sent, "not_found": missing})
    else:
        print(f"redrove {len(sent)} dead letter(s)")
    if missing:
        raise _fail(f"{missing} dead letter(s) not found")


@dlq_app.command("purge")
def purge_command(
    ctx: typer.Context,
    queue: QueueOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Delete dead letters for good (of one queue, or all)."""
    what = f"the dead letters of queue {queue}" if queue else "every dead letter"
    if not yes and not typer.confirm(f"Delete {what}?", default=False, err=True):
        raise _fail("purge cancelled: nothing deleted")
    purged = _dead_letters(ctx).purge(queue)
    if json_output:
        views.print_json({"purged": purged})
    else:
        print(f"purged {purged} dead letter(s)")
