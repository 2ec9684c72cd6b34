"""``redstep serve``: AWS's Step Functions, SQS and SNS APIs over HTTP, for unchanged boto3 code and
the AWS CLI, and the dashboard at ``/ui/``.

A thin command over :mod:`orchestrator.api.server`. Every request must be signed (SigV4) with
a configured key pair (``REDSTEP_ACCESS_KEY_ID``/``REDSTEP_SECRET_ACCESS_KEY``, or the pairs of
``REDSTEP_CREDENTIALS_FILE``); ``--no-auth`` skips the check and is accepted only on a loopback
address. ``REDSTEP_REGION`` and ``REDSTEP_ACCOUNT_ID`` make the ARNs. Exit status: 0 stopped by
a signal, 1 could not serve, 2 usage (no credentials, --no-auth on a public address).
"""

from __future__ import annotations

import ipaddress
import sys
from typing import Annotated

import typer
from pydantic import ValidationError

DEFAULT_PORT = 8083


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to ``app``."""
    app.command("serve")(serve_command)


def serve_command(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", envvar="REDSTEP_API_HOST", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", envvar="REDSTEP_API_PORT", min=0, max=65535)] = DEFAULT_PORT,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Do not check signatures (only on a loopback address).")
    ] = False,
) -> None:
    """Serve the Step Functions, SQS and SNS APIs, the dashboard (/ui/) and /healthz on HOST:PORT."""
    from orchestrator.api.config import ApiSettings, CredentialsError  # imported late: heavy modules
    from orchestrator.api.server import build_app, serve

    try:
        api = ApiSettings()
        credentials = api.credentials()
    except (ValidationError, CredentialsError) as error:
        raise _usage(f"redstep serve: {_first_line(error)}") from None
    if no_auth and not is_loopback(host):
        raise _usage(
            f"redstep serve: --no-auth is accepted only on a loopback address (127.0.0.1, ::1), not {host}:"
            " anyone who reaches the port could run anything; configure REDSTEP_ACCESS_KEY_ID and"
            " REDSTEP_SECRET_ACCESS_KEY instead"
        )
    if not credentials and not no_auth:
        raise _usage(
            "redstep serve: no credentials: set REDSTEP_ACCESS_KEY_ID and REDSTEP_SECRET_ACCESS_KEY (or"
            " REDSTEP_CREDENTIALS_FILE, a file of several pairs), or pass --no-auth on a loopback address"
        )
    settings = ctx.obj.settings()
    app = build_app(settings, api, None if no_auth else credentials)
    checked = (
        "signatures not checked (--no-auth)"
        if no_auth
        else f"SigV4 checked against {len(credentials)} key(s)"
    )
    print(
        f"redstep serve: http://{host}:{port} (Step Functions, SQS, SNS; dashboard at /ui/;"
        f" region {api.region}, account {api.account_id};"
        f" {checked})",
        file=sys.stderr,
        flush=True,
    )
    serve(app, host, port, ctx.obj.log_level)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _usage(message: str) -> typer.Exit:
    print(message, file=sys.stderr, flush=True)
    return typer.Exit(2)


def _first_line(error: Exception) -> str:
    if isinstance(error, ValidationError):
        problem = error.errors()[0]
        field = ".".join(str(part) for part in problem["loc"])
        return f"REDSTEP_{field.upper()}: {problem['msg']}"
    return str(error)
