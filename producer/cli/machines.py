"""``redstep run``, ``redstep machines validate`` and ``redstep machines retention``.

``run`` and ``validate`` run or check any ASL definition; ``retention`` sets, clears or shows
how long a state machine's finished executions are kept.

``run --local`` drives the pure core in-process on a virtual clock, so Wait states, back-off
and timeouts take no real time; without ``--local`` the execution runs on the stack that
``REDIS_URL`` points at (else the running ``redstep up``), and the command waits for it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from orchestrator.asl.definition import StateMachine
from orchestrator.asl.errors import DefinitionError
from orchestrator.asl.validation import validate
from orchestrator.protocol.decoding import strict_loads
from producer.cli.views import printable

if TYPE_CHECKING:
    import redis

    from orchestrator.runtime.client import Client
    from orchestrator.runtime.keys import Keys

machines_app = typer.Typer(help="Check and manage state machine definitions.", no_args_is_help=True)


def _read_json(path: Path, what: str) -> Any:
    try:
        return strict_loads(path.read_text())
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {what} {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise typer.BadParameter(f"{what} {path} is not valid JSON: {exc}") from None


@machines_app.command("validate")
def validate_command(
    definition: Annotated[Path, typer.Argument(help="An ASL definition (JSON file).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the problems as JSON.")] = False,
) -> None:
    """Check a definition and report every problem with its JSON path; exit 1 when it is invalid."""
    problems = validate(_read_json(definition, "definition"))
    if as_json:
        print(json.dumps({"valid": not problems, "problems": [p.__dict__ for p in problems]}))
    elif problems:
        for problem in problems:
            print(printable(f"{definition}: {problem}"))
    else:
        print(f"{definition}: valid")
    raise typer.Exit(1 if problems else 0)


# A negative SECONDS must reach the check below, not be taken for an unknown option.
@machines_app.command("retention", context_settings={"ignore_unknown_options": True})
def retention_command(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="A state machine; without it, every machine.")] = None,
    seconds: Annotated[
        str | None, typer.Argument(help="Keep its finished executions this long after they stop; 0: forever.")
    ] = None,
    default: Annotated[
        bool, typer.Option("--default", help="Clear its own retention: REDSTEP_RETENTION_SECONDS applies.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Set, clear (--default) or show how long a machine's finished executions are kept."""
    from orchestrator.runtime import machines  # imported late: the CLI starts faster without Redis code
    from orchestrator.runtime.keys import Keys

    if (seconds is not None or default) and name is None:
        _usage_error("give the state machine whose retention to set: redstep machines retention NAME SECONDS")
    if seconds is not None and default:
        _usage_error("give SECONDS or --default, not both")
    value = None
    if seconds is not None:
        try:
            value = machines.parse_retention(seconds, name or "")
        except machines.RetentionValueError as exc:
            _usage_error(str(exc))
    settings, connection = ctx.obj.connect()
    keys = Keys(settings.prefix)
    if seconds is not None or default:
        try:
            machines.set_machine_retention(connection, keys, name or "", value)
        except machines.RetentionValueError as exc:
            _usage_error(str(exc))
    rows = _retention_rows(connection, keys, settings.retention_seconds, name)
    if as_json:
        print(json.dumps(rows if name is None else rows[0]))
        return
    for row in rows:
        kept = "forever" if not row["retentionSeconds"] else f"{row['retentionSeconds']:g}s"
        print(printable(f"{row['stateMachine']}  {kept}  ({row['source']})"))


def _retention_rows(
    connection: redis.Redis, keys: Keys, default_seconds: float, name: str | None
) -> list[dict[str, Any]]:
    from orchestrator.runtime.machines import machine_retentions

    overrides = machine_retentions(connection, keys)
    names = [name] if name is not None else sorted(k.decode() for k in connection.hkeys(keys.machines))
    if name is not None and name not in overrides and not connection.hexists(keys.machines, name):
        print(
            printable(f"redstep machines retention: no state machine is registered as {name!r}"),
            file=sys.stderr,
        )
        raise typer.Exit(1)
    return [
        {
            "stateMachine": machine,
            "retentionSeconds": overrides.get(machine, default_seconds),
            "source": "machine" if machine in overrides else "default (REDSTEP_RETENTION_SECONDS)",
        }
        for machine in names
    ]


def _usage_error(message: str) -> NoReturn:
    print(printable(f"redstep machines retention: {message}"), file=sys.stderr, flush=True)
    raise typer.Exit(2)


def run_command(
    ctx: typer.Context,
    definition: Annotated[Path, typer.Argument(help="An ASL definition (JSON file).")],
    input: Annotated[str | None, typer.Option("--input", help="The execution input, as JSON.")] = None,
    input_file: Annotated[Path | None, typer.Option("--input-file", help="A file holding the input.")] = None,
    functions: Annotated[
        list[str] | None,
        typer.Option(
            "--functions", help="A Python file or module whose (event, context) functions tasks may call."
        ),
    ] = None,
    local: Annotated[
        bool, typer.Option("--local", help="Run in-process on a virtual clock, no Redis.")
    ] = False,
    machines: Annotated[
        list[str] | None,
        typer.Option(
            "--machine",
            help="NAME=FILE: a state machine its states:startExecution tasks may start (--local; on the"
            " stack, register it with `redstep machines register`).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a stack execution.")] = 300.0,
) -> None:
    """Run one execution of DEFINITION and print how it ended; exit 0 only when it SUCCEEDED."""
    document = _read_json(definition, "definition")
    execution_input = _execution_input(input, input_file)
    try:
        machine = StateMachine.parse(document, name=_machine_name(definition, document))
    except DefinitionError as exc:
        print(str(exc), file=sys.stderr)
        raise typer.Exit(1) from None
    if local:
        result = _run_local(machine, execution_input, functions or [], _nested_machines(machines or []))
    else:
        from orchestrator.runtime.client import Client  # imported late: a heavy module

        settings, connection = ctx.obj.connect()
        result = _run_on_stack(Client(connection, settings), machine, document, execution_input, timeout)
    _print_result(result, as_json)
    raise typer.Exit(0 if result["status"] == "SUCCEEDED" else 1)


def _execution_input(text: str | None, path: Path | None) -> Any:
    if text is not None and path is not None:
        raise typer.BadParameter("give --input or --input-file, not both")
    if path is not None:
        return _read_json(path, "input file")
    if text is None:
        return {}
    try:
        return strict_loads(text)
    except ValueError as exc:
        raise typer.BadParameter(f"--input is not valid JSON: {exc}") from None


def _machine_name(path: Path, document: Any) -> str:
    # The same definition always gets the same name, so re-running it reuses the registration.
    digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:12]
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in path.stem.split(".")[0])
    return f"{stem}-{digest}"


def _nested_machines(specs: list[str]) -> dict[str, StateMachine]:
    """The machines ``--machine NAME=FILE`` names, parsed; a bad one is a usage error."""
    parsed = {}
    for spec in specs:
        name, separator, path = spec.partition("=")
        if not separator or not name or not path:
            raise typer.BadParameter(f"--machine {spec!r}: give NAME=FILE, e.g. Child=child.asl.json")
        try:
            parsed[name] = StateMachine.parse(_read_json(Path(path), f"machine {name}"), name=name)
        except DefinitionError as exc:
            raise typer.BadParameter(f"--machine {name}: {exc}") from None
    return parsed


def _run_local(
    machine: StateMachine, execution_input: Any, specs: list[str], machines: dict[str, StateMachine]
) -> dict[str, Any]:
    from orchestrator.local import LocalRunner
    from worker.registry import FunctionRegistry

    registry = FunctionRegistry()
    for spec in specs:
        try:
            registry.load_functions(spec)
        except (ImportError, OSError, SyntaxError) as exc:
            raise typer.BadParameter(f"cannot load functions from {spec}: {exc}") from None
    handlers = {name: registry.lookup(name) for name in registry.names()}
    return LocalRunner(machine, handlers, machines).run(execution_input).to_json()  # type: ignore[arg-type]


def _run_on_stack(
    client: Client, machine: StateMachine, document: Any, execution_input: Any, timeout: float
) -> dict[str, Any]:
    client.register_machine(machine.name, document)
    name = client.start_execution(machine.name, execution_input)
    described = client.wait(name, timeout)
    return {
        "status": described["status"],
        "output": described.get("output"),
        "error": described.get("error"),
        "cause": described.get("cause"),
        "executionArn": described.get("executionArn"),
        "history": client.history(name),
    }


def _print_result(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
        return
    # The error and cause are a function's words, the output its data: escaped for the terminal.
    print(printable(f"{result['status']}  {result['executionArn']}"))
    if result["status"] == "SUCCEEDED":
        print(json.dumps(result["output"], indent=2))
    else:
        print(printable(f"error: {result['error']}"))
        if result["cause"]:
            print(printable(f"cause: {result['cause']}"))


def register(app: typer.Typer) -> None:
    """Add ``run`` and ``machines validate`` to the ``redstep`` app."""
    app.command("run")(run_command)
    app.add_typer(machines_app, name="machines")
