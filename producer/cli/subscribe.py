"""``redstep subscribe``: print each notification of a topic as it arrives.

A thin command over :func:`orchestrator.runtime.notifications.subscribe`.
"""

from __future__ import annotations

import sys
from typing import Annotated

import redis
import typer

from orchestrator.settings import masked_url
from producer.cli.common import JsonOption, fail
from producer.cli.subscribe_view import print_messages


def register(app: typer.Typer) -> None:
    """Add the ``subscribe`` command to ``app``."""
    app.command("subscribe")(subscribe)


def subscribe(
    ctx: typer.Context,
    json_output: JsonOption = False,
    replay: Annotated[
        bool, typer.Option("--replay", help="First print what the topic's stream holds.")
    ] = False,
    count: Annotated[int | None, typer.Option("--count", "-n", min=1, help="Exit after N messages.")] = None,
    topic: Annotated[str | None, typer.Option(help="Topic (default: the pipeline's).")] = None,
) -> None:
    """Print each notification as it arrives (human form, or --json one envelope per line)."""
    from orchestrator.runtime.notifications import subscribe as messages_of

    settings, client = ctx.obj.connect()
    client.ping()  # an unreachable Redis is then the app's one line, with how to fix it
    try:
        print_messages(
            messages_of(client, settings, topic or settings.topic, replay), sys.stdout, json_output, count
        )
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except redis.RedisError as error:
        raise fail(f"lost Redis at {masked_url(settings.redis_url)}: {error}") from None
