"""The API ``redstep up`` starts: its address, its key pair, and the lines another shell pastes.

With no credentials configured (``REDSTEP_ACCESS_KEY_ID``/``REDSTEP_SECRET_ACCESS_KEY``, or
``REDSTEP_CREDENTIALS_FILE``), ``up`` makes a random pair for this run. The pair reaches the
``serve`` child through its environment alone (never a command line, a log or the runtime
file) and is printed once, on stdout, as the ``export AWS_...`` lines.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import ValidationError

DEFAULT_API_PORT = 8083
ACCESS_KEY_PREFIX = "RSTP"  # 4 letters + 16 hex digits: the length of an AWS access key id
HEALTH_TIMEOUT_SECONDS = 2.0


class ApiPlanError(ValueError):
    """The API cannot be started as asked; the message says why and what to do."""


@dataclass(frozen=True)
class ApiPlan:
    """Where the API will listen, and the key pair a client signs with.

    Attributes:
        host: the address ``serve`` binds.
        port: its port (chosen already when 0 was asked for).
        region: the region its ARNs and signatures use.
        access_key_id: the key id to print; empty when only a credentials file names keys.
        secret: the generated secret, printed once; ``None`` when the user configured theirs.
        env: what only the ``serve`` child gets in its environment.
    """

    host: str
    port: int
    region: str
    access_key_id: str
    secret: str | None = field(repr=False)
    env: dict[str, str] = field(repr=False)

    @property
    def endpoint(self) -> str:
        """The URL a client on this machine uses (a wildcard bind is reached on loopback)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else "[::1]" if self.host == "::" else self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def serve_args(self) -> list[str]:
        return ["--host", self.host, "--port", str(self.port)]


def plan_api(host: str, port: int) -> ApiPlan:
    """The API to start on ``host``:``port`` (0: any free port) with the configured or a new pair.

    Raises:
        ApiPlanError: the credentials are half configured or unreadable, a variable is
            invalid, or the port is taken.
    """
    from orchestrator.api.config import ApiSettings, CredentialsError  # imported late: pydantic-settings

    try:
        api = ApiSettings()
        configured = api.credentials()
    except ValidationError as error:
        problem = error.errors()[0]
        field_name = ".".join(str(part) for part in problem["loc"])
        raise ApiPlanError(f"REDSTEP_{field_name.upper()}: {problem['msg']}") from None
    except CredentialsError as error:
        raise ApiPlanError(str(error)) from None
    port = _bindable_port(host, port)
    if configured:
        return ApiPlan(host, port, api.region, api.access_key_id, None, {})
    key_id = ACCESS_KEY_PREFIX + secrets.token_hex(8).upper()
    secret = secrets.token_urlsafe(30)
    env = {"REDSTEP_ACCESS_KEY_ID": key_id, "REDSTEP_SECRET_ACCESS_KEY": secret}
    return ApiPlan(host, port, api.region, key_id, secret, env)


def _bindable_port(host: str, port: int) -> int:
    """``port``, or a free one for 0, checked by binding it now (``serve`` binds it a moment later)."""
    family = socket.AF_INET6 if _is_ipv6(host) else socket.AF_INET
    with socket.socket(family) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError as error:
            raise ApiPlanError(
                f"cannot listen on {host}:{port} for the API ({error.strerror}): pass --api-port with"
                " another port (0: any free one), or --no-api"
            ) from None
        return int(sock.getsockname()[1])


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).version == 6
    except ValueError:
        return False


def export_lines(plan: ApiPlan) -> list[str]:
    """The lines another shell pastes to point boto3 and the AWS CLI at this API."""
    lines = [f"export AWS_ENDPOINT_URL={plan.endpoint}", f"export AWS_DEFAULT_REGION={plan.region}"]
    if plan.secret is not None:
        lines += [
            f"export AWS_ACCESS_KEY_ID={plan.access_key_id}",
            f"export AWS_SECRET_ACCESS_KEY={plan.secret}",
        ]
    elif plan.access_key_id:
        lines += [
            f"export AWS_ACCESS_KEY_ID={plan.access_key_id}",
            "export AWS_SECRET_ACCESS_KEY=...   # the REDSTEP_SECRET_ACCESS_KEY you configured",
        ]
    else:
        lines.append("# AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY: a pair of your REDSTEP_CREDENTIALS_FILE")
    return lines


def api_is_ready(plan: ApiPlan) -> Callable[[], bool]:
    """Whether the API answers ``GET /healthz`` with 200 (it reaches Redis)."""
    url = f"{plan.endpoint}/healthz"
    # No proxy: the API is on this machine, whatever HTTP_PROXY says.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def ready() -> bool:
        try:
            with opener.open(url, timeout=HEALTH_TIMEOUT_SECONDS) as answer:
                return bool(answer.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    return ready
