"""``redstep``: run the stack, produce dragon records, follow notifications, inspect executions.

This module assembles the typer app from the command groups (one module each) and gives the
options every command shares. Every command is a thin layer over a library function. Output
for people goes to stdout; with ``--json`` stdout holds only JSON. Logs and errors go to
stderr. Exit status: 0 ok, 1 failed or not found, 2 usage.
"""

from __future__ import annotations

import logging
import sys
from importlib import metadata
from typing import Annotated

import redis
import typer
from pydantic import ValidationError

from orchestrator.settings import masked_url
from producer.cli import (
    dlq,
    doctor,
    events,
    executions,
    machines,
    processes,
    produce,
    serve,
    status,
    subscribe,
    tasks,
    up,
)
from producer.cli.address import configured_url
from producer.cli.common import RedisTarget, Shared


class RedstepApp(typer.Typer):
    """The typer app, turning a lost Redis connection or a bad Redis URL into one line on stderr."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.target = RedisTarget()  # the Redis the command talks to, named (masked) in its errors

    def __call__(self, *args: object, **kwargs: object) -> object:
        try:
            return super().__call__(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            # redis-py names host and port only for a refused connection, not for refused credentials.
            where = f" at {masked_url(self.target.url)}" if self.target.url else ""
            print(f"cannot reach Redis{where}: {error}{self.target.hint}", file=sys.stderr, flush=True)
            sys.exit(1)
        except ValidationError as error:
            # A bad REDSTEP_* variable: name it and what is wrong, without the value (it may be secret).
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            print(f"invalid configuration: {problems}", file=sys.stderr, flush=True)
            sys.exit(2)


app = RedstepApp(
    name="redstep",
    help="AWS Step Functions, Lambda (pull model), SQS and SNS on your own Redis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    """Print the installed version and exit (the eager ``--version`` option)."""
    if value:
        try:
            version = metadata.version("redstep")
        except metadata.PackageNotFoundError:
            version = "unknown (not installed)"
        print(f"redstep {version}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    redis_url: Annotated[
        str | None,
        typer.Option(
            envvar="REDIS_URL",
            show_envvar=True,
            help="Redis to use (else REDSTEP_REDIS_HOST/_PORT/_PASSWORD; up: a private one).",
        ),
    ] = None,
    prefix: Annotated[
        str | None,
        typer.Option(envvar="REDSTEP_PREFIX", show_envvar=True, help="Key prefix (default: redstep)."),
    ] = None,
    log_level: Annotated[str, typer.Option(envvar="REDSTEP_LOG_LEVEL", show_envvar=True)] = "INFO",
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True)] = False,
) -> None:
    """AWS Step Functions, Lambda (pull model), SQS and SNS on your own Redis."""
    logging.basicConfig(
        stream=sys.stderr, level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    ctx.obj = Shared(
        redis_url=configured_url(redis_url), prefix=prefix, log_level=log_level.upper(), target=app.target
    )


# The order here is the order of `redstep --help`.
COMMAND_GROUPS = (
    executions,
    up,
    processes,
    produce,
    subscribe,
    status,
    machines,
    tasks,
    dlq,
    serve,
    doctor,
    events,
)
for group in COMMAND_GROUPS:
    group.register(app)

if __name__ == "__main__":
    app()
