"""``redstep``: run the stack, produce dragon records, follow notifications, inspect executions.

Every command is a thin layer over a library function. Output for people goes to stdout;
with ``--json`` stdout holds only JSON. Logs and errors go to stderr. Exit status: 0 ok,
1 failed or not found, 2 usage.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import redis
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from orchestrator.settings import Settings, masked_url
from producer import cli_dlq, cli_doctor, cli_events, cli_machines, cli_serve, cli_tasks, discovery, views
from producer.address import configured_url
from producer.discovery import Resolved
from producer.produce import (
    PROGRESS_THRESHOLD,
    ProduceInterrupted,
    content_key,
    idempotency_key_problem,
    produce,
    record_from_flags,
)
from producer.records import InvalidRecords, load_records, validate_records
from producer.stack import Stack, stop_on_signals
from producer.subscribe_view import print_messages

if TYPE_CHECKING:
    from orchestrator.runtime.client import Client

log = logging.getLogger("redstep.up")


class RedstepApp(typer.Typer):
    """The typer app, turning a lost Redis connection or a bad Redis URL into one line on stderr."""

    redis_url: str | None = None  # the Redis the command talks to, named (masked) in its errors
    redis_hint: str = ""  # how to fix an unreachable Redis, for the way the URL was found

    def __call__(self, *args: object, **kwargs: object) -> object:
        try:
            return super().__call__(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            # redis-py names host and port only for a refused connection, not for refused credentials.
            where = f" at {masked_url(self.redis_url)}" if self.redis_url else ""
            print(f"cannot reach Redis{where}: {error}{self.redis_hint}", file=sys.stderr, flush=True)
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
executions_app = typer.Typer(help="Inspect state machine executions.", no_args_is_help=True)
app.add_typer(executions_app, name="executions")

stdout = Console()
stderr = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print only JSON on stdout.")]
STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


HINTS = {
    "default": "; start `redstep up`, or set REDIS_URL to your Redis",
    "up": "; its `redstep up` is still running: is it stuck? (Ctrl-C it and start it again)",
    "configured": "; check REDIS_URL (or --redis-url, or the REDSTEP_REDIS_* parts)",
}
CONNECT_TIMEOUT_SECONDS = 5.0


@dataclass
class Shared:
    """The options every command shares; ``None`` means the environment's value (or the default).

    ``redis_url`` is what the user named; when they named nothing, the first command that
    needs Redis finds it (see producer.discovery) and says so once on stderr.
    """

    redis_url: str | None
    prefix: str | None
    log_level: str = "INFO"
    _resolved: Resolved | None = field(default=None, repr=False)

    def resolve(self) -> Resolved:
        """Where Redis is, found once per command; exits with one line when that cannot be told."""
        if self._resolved is None:
            try:
                self._resolved = discovery.resolve(self.redis_url, self.prefix)
            except discovery.DiscoveryError as error:
                raise fail(str(error)) from None
            app.redis_url, app.redis_hint = self._resolved.url, HINTS[self._resolved.source]
            if self._resolved.note:
                print(f"redstep: {self._resolved.note}", file=sys.stderr, flush=True)
        return self._resolved

    def settings(self) -> Settings:
        """The settings from the environment, with the options given on the command line on top."""
        resolved = self.resolve()
        overrides = {"redis_url": resolved.url, "prefix": self.prefix or resolved.prefix}
        return Settings(**{key: value for key, value in overrides.items() if value})

    def connect(self, timeout: float | None = None) -> tuple[Settings, redis.Redis]:
        """The settings and a Redis connection; ``timeout`` bounds each reply (None: no bound).

        Connecting itself is always bounded, so a wrong host or a ``rediss://`` URL pointed at
        a plain server fails within seconds instead of hanging.
        """
        settings = self.settings()
        return settings, redis_from_url(settings.redis_url, timeout)


def redis_from_url(url: str, timeout: float | None = None) -> redis.Redis:
    """A client for ``url``; a URL redis-py cannot read exits with one line naming what is wrong."""
    try:
        return redis.Redis.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            socket_timeout=timeout,
            decode_responses=False,
        )
    except (ValueError, TypeError) as error:
        raise fail(f"invalid Redis URL {masked_url(url)}: {error}") from None


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` on stderr and return the exit to raise."""
    # Plain print: rich would wrap long lines at the terminal width, splitting messages for grep.
    print(message, file=sys.stderr, flush=True)
    return typer.Exit(code)


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
    ctx.obj = Shared(redis_url=configured_url(redis_url), prefix=prefix, log_level=log_level.upper())


@app.command()
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
        app.redis_url = stack.redis_url
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


@app.command()
def orchestrator(ctx: typer.Context) -> None:
    """Run one orchestrator: event loop, timers, source-queue polling, notifications."""
    from orchestrator.runtime.loop import run_orchestrator  # imported late: a heavy module

    stop = threading.Event()
    restore = stop_on_signals(stop)
    try:
        run_orchestrator(ctx.obj.settings(), stop)
    finally:
        restore()


@app.command()
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
    from worker.process import run_worker  # imported late: a heavy module

    shared: Shared = ctx.obj
    run_worker(
        shared.settings(), functions=functions or [], burst=burst, name=name, logging_level=shared.log_level
    )


@app.command("produce")
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
        views.print_json({"queue": target, "enqueued": len(ids), "idempotency_key": key, "message_ids": ids})
    else:
        print(f"enqueued {len(ids)} record(s) on queue {target}")


@app.command()
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


def _client(ctx: typer.Context) -> Client:
    from orchestrator.runtime.client import Client  # imported late: a heavy module

    settings, client = ctx.obj.connect(timeout=10)
    return Client(client, settings)


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
    executions = _client(ctx).list_executions(status=status.upper() if status else None, limit=limit)
    if json_output:
        views.print_json(executions)
    else:
        stdout.print(views.executions_table(executions))


@executions_app.command("describe")
def executions_describe(ctx: typer.Context, name: str, json_output: JsonOption = False) -> None:
    """Show one execution: status, input, output, error and cause."""
    execution = _client(ctx).describe(name)
    if execution is None:
        raise fail(f"execution {name} not found")
    if json_output:
        views.print_json(execution)
    else:
        stdout.print(views.mapping_table(f"execution {name}", execution))


@executions_app.command("history")
def executions_history(ctx: typer.Context, name: str, json_output: JsonOption = False) -> None:
    """Show one execution's event history, as GetExecutionHistory shapes it."""
    client = _client(ctx)
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

    try:
        execution = _client(ctx).redrive(name)
    except ExecutionNotFound:
        raise fail(f"execution {name} not found") from None
    except NotRedrivable as error:
        raise fail(f"cannot redrive: {error}") from None
    if json_output:
        views.print_json(execution)
    else:
        print(f"execution {name} redriven (redrive {execution['redriveCount']}): {execution['status']}")


@app.command()
def status(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Queue depths, dead letters, workers, executions by status."""
    summary = _client(ctx).status()
    if json_output:
        views.print_json(summary)
    else:
        views.print_status(stdout, summary)


@app.command()
def check(ctx: typer.Context) -> None:
    """Exit 0 only when Redis answers and the stack is healthy (for compose healthchecks)."""
    settings = ctx.obj.settings()
    try:
        healthy, message = _client(ctx).healthy()
    except redis.RedisError as error:
        healthy, message = False, f"Redis unreachable at {masked_url(settings.redis_url)}: {error}"
    verdict = "ok" if healthy else "unhealthy"
    raise fail(f"{verdict}: {message} ({masked_url(settings.redis_url)})", 0 if healthy else 1)


cli_machines.register(app)
cli_tasks.register(app)
cli_dlq.register(app)
cli_serve.register(app)
cli_doctor.register(app)
cli_events.register(app, executions_app)

if __name__ == "__main__":
    app()
