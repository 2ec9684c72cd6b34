"""``redstep produce``: validate dragon records, then enqueue them all on the source queue (or none).

A thin command over :func:`producer.produce.produce`, the library function a Python user calls.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from orchestrator.settings import masked_url
from producer.cli import views
from producer.cli.common import JsonOption, fail, stderr
from producer.produce import (
    PROGRESS_THRESHOLD,
    ProduceInterrupted,
    content_key,
    idempotency_key_problem,
    message_ids_for,
    produce,
    record_from_flags,
    started_before,
)
from producer.records import InvalidRecords, load_records, validate_records


def register(app: typer.Typer) -> None:
    """Add the ``produce`` command to ``app``."""
    app.command("produce")(produce_command)


def produce_command(
    ctx: typer.Context,
    source: Annotated[str | None, typer.Argument(help="JSON array or NDJSON file; - for stdin.")] = None,
    name: Annotated[str | None, typer.Option(help="Single record: dragon_name_str.")] = None,
    description: Annotated[str | None, typer.Option(help="Single record: description_str.")] = None,
    family: Annotated[str | None, typer.Option(help="Single record: family_str.")] = None,
    city: Annotated[str | None, typer.Option(help="Single record: location_city_str.")] = None,
    state: Annotated[str | None, typer.Option(help="Single record: location_state_str.")] = None,
    country: Annotated[str | None, typer.Option(help="Single record: location_country_str.")] = None,
    neighborhood: Annotated[
        str | None, typer.Option(help="Single record: location_neighborhood_str.")
    ] = None,
    phone: Annotated[str | None, typer.Option(help="Single record: reportingPhoneNumber.")] = None,
    confirm: Annotated[bool | None, typer.Option(help="Single record: confirmationRequired.")] = None,
    queue: Annotated[str | None, typer.Option(help="Source queue (default: the pipeline's).")] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            help="Message ids are KEY-<position> (default: a hash of the records). The same input "
            "under the same key starts each record once, however often it is sent; a new key sends it anew."
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Validate every record, then enqueue them all (or none, if any is invalid); --json lists their ids.

    Each record's message id, its execution's name, comes from the input and the record's position,
    so running the same command again after a failure starts no record twice.
    """
    flags = record_from_flags(
        name=name, description=description, family=family, city=city, state=state, country=country,
        neighborhood=neighborhood, phone=phone, confirm=confirm,
    )  # fmt: skip
    if source and flags:
        raise typer.BadParameter("give either a FILE or the single-record options, not both")
    if not source and not flags:
        raise typer.BadParameter("give a FILE (or - for stdin) or the single-record options (--name ...)")
    try:
        records = load_records(source) if source else validate_records([flags], "the options")
    except InvalidRecords as error:
        raise fail(str(error)) from None
    key = idempotency_key or content_key(records)
    if problem := idempotency_key_problem(key, len(records)):
        raise typer.BadParameter(problem, param_hint="--idempotency-key")
    settings, client = ctx.obj.connect()
    client.ping()  # an unreachable Redis is then the app's one line, with how to fix it
    target = queue or settings.source_queue
    # Asked before sending, so that what this run itself starts is not counted.
    repeated = started_before(client, settings, message_ids_for(key, len(records)))
    try:
        if len(records) > PROGRESS_THRESHOLD:
            columns = (TextColumn("enqueueing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            with Progress(*columns, console=stderr) as progress:
                bar = progress.add_task("enqueue", total=len(records))
                ids = produce(client, settings, records, target, lambda n: progress.advance(bar, n), key)
        else:
            ids = produce(client, settings, records, target, idempotency_key=key)
    except ProduceInterrupted as stopped:
        if json_output:
            views.print_json(stopped.summary(target))
        where = f"Redis at {masked_url(settings.redis_url)}"
        raise fail(
            f"cannot enqueue: {where}: {stopped.error}\n{stopped.advice(bool(idempotency_key))}"
        ) from None
    if json_output:
        views.print_json(
            {
                "queue": target,
                "enqueued": len(ids),
                "idempotency_key": key,
                "message_ids": ids,
                "started_before": repeated,
            }
        )
        return
    print(f"enqueued {len(ids)} record(s) on queue {target}")
    if repeated:
        how = "this key" if idempotency_key else "the same input"
        print(
            f"{len(repeated)} of them were produced before under the same message ids ({how}): their "
            "executions exist, so they start nothing new. To run them again, give a new --idempotency-key.",
            file=sys.stderr,
        )
