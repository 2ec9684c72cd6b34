"""A live ``redstep serve`` (with a real orchestrator and worker) and boto3 clients pointed at it.

The processes are the real CLI (``python -m producer.cli``), started once per test module
under a prefix of their own on the session's redis-server, and always stopped in teardown
(SIGTERM, a bounded wait, SIGKILL).
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from rq import Queue, Worker
from rq.serializers import JSONSerializer

from orchestrator.runtime import heartbeats
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.server import RedisServer, free_port
from tests.chaos import stop, wait_until

ACCESS_KEY_ID = "AKIDREDSTEPTEST0001"
SECRET_ACCESS_KEY = "s3cr3t/Redstep+Test/Key0000000000000000"
REGION = "us-east-1"
ACCOUNT = "000000000000"
FUNCTIONS = Path(__file__).resolve().with_name("stack_functions.py")
READY_SECONDS = 60.0
"""How long a process may take to come up: generous, the machine is shared and busy."""
FINISH_SECONDS = 60.0


@dataclass
class ApiStack:
    """A serve process (and, when asked, an orchestrator and a worker) under one prefix."""

    url: str
    env: dict[str, str]
    prefix: str
    logs: Path

    def client(self, **overrides: Any) -> Any:
        """A boto3 Step Functions client for the endpoint, with the test keys unless overridden."""
        options: dict[str, Any] = {
            "endpoint_url": self.url,
            "region_name": REGION,
            "aws_access_key_id": ACCESS_KEY_ID,
            "aws_secret_access_key": SECRET_ACCESS_KEY,
            "config": Config(retries={"max_attempts": 1}),
        }
        options.update(overrides)
        return boto3.client("stepfunctions", **options)

    def log_text(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text()[-4000:]}" for log in sorted(self.logs.glob("*.log"))
        )


def api_env(redis_url: str, prefix: str) -> dict[str, str]:
    """The environment of the stack's processes: the test Redis and prefix, the test keys."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("REDSTEP_", "AWS_"))}
    env.update(
        REDIS_URL=redis_url,
        REDSTEP_PREFIX=prefix,
        REDSTEP_ACCESS_KEY_ID=ACCESS_KEY_ID,
        REDSTEP_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY,
        REDSTEP_RUNTIME_DIR=os.environ.get("REDSTEP_RUNTIME_DIR", ""),
        PYTHONUNBUFFERED="1",
    )
    return env


def start(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """``python -m producer.cli ARGS`` with its output in ``log``."""
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "producer.cli", *args], env=env, stdout=handle, stderr=subprocess.STDOUT
        )


def healthz(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_serving(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Return once ``/healthz`` answers 200; fail at once, with its log, if the process exits."""

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"redstep serve exited with {process.returncode}:\n{log.read_text()}")
        return healthz(url)

    wait_until(ready, READY_SECONDS, f"redstep serve at {url}", interval=0.1)


def serve(env: dict[str, str], logs: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    """A running ``redstep serve`` on a free port and its URL."""
    port = free_port()
    log = logs / f"serve-{port}.log"
    process = start(env, log, "serve", "--port", str(port), *args)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_serving(url, process, log)
    except BaseException:
        stop(process)
        raise
    return process, url


def wait_listening(stack: ApiStack, *, orchestrator: bool, worker: bool) -> None:
    """Return once the stack's orchestrator beats and its worker listens on the task queue, as asked.

    A request that looks for them (TestState runs a function on the workers only when both are
    there) must not race their start-up on a busy machine."""
    keys = Keys(stack.prefix)
    with redis.Redis.from_url(stack.env["REDIS_URL"]) as connection:
        queue = Queue(keys.task_queue_name, connection=connection, serializer=JSONSerializer)

        def ready() -> bool:
            beating = not orchestrator or bool(heartbeats.alive(connection, keys))
            return beating and (not worker or bool(Worker.all(queue=queue)))

        try:
            wait_until(ready, READY_SECONDS, "the stack's orchestrator and worker to register")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{stack.log_text()}") from None


def running_stack(
    redis_server: RedisServer,
    logs: Path,
    *,
    orchestrator: bool,
    worker: bool,
    settings: dict[str, str] | None = None,
) -> Iterator[ApiStack]:
    """serve, one orchestrator and one worker as asked, with ``settings`` added to their
    environment, until the generator closes."""
    prefix = f"api{uuid.uuid4().hex[:8]}"
    env = {**api_env(redis_server.url, prefix), **(settings or {})}
    processes: list[subprocess.Popen[bytes]] = []
    try:
        if orchestrator:
            processes.append(start(env, logs / "orchestrator.log", "orchestrator"))
        if worker:
            processes.append(start(env, logs / "worker.log", "worker", "--functions", str(FUNCTIONS)))
        process, url = serve(env, logs)
        processes.append(process)
        stack = ApiStack(url, env, prefix, logs)
        wait_listening(stack, orchestrator=orchestrator, worker=worker)
        yield stack
    finally:
        for process in processes:
            stop(process)


@pytest.fixture(scope="module")
def api_stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    """serve + orchestrator + worker, shared by a module's tests (each uses names of its own)."""
    yield from running_stack(redis_server, tmp_path_factory.mktemp("api"), orchestrator=True, worker=True)


@pytest.fixture(scope="module")
def serve_only(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    """serve alone (no orchestrator, no worker), shared by a module's tests."""
    yield from running_stack(redis_server, tmp_path_factory.mktemp("api"), orchestrator=False, worker=False)


@dataclass
class Answer:
    """What the endpoint answered to a hand-made request."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def code(self) -> str:
        return str(self.body.get("__type", ""))


def signed_post(
    url: str,
    action: str,
    body: bytes | str | dict[str, Any],
    *,
    host: str | None = None,
    secret: str = SECRET_ACCESS_KEY,
    sent_body: bytes | None = None,
) -> Answer:
    """POST ``body`` to ``AWSStepFunctions.<action>``, signed by botocore as for ``host``.

    ``sent_body`` replaces the body after signing (a body changed on the way).
    """
    data = (
        json.dumps(body).encode()
        if isinstance(body, dict)
        else body.encode()
        if isinstance(body, str)
        else body
    )
    netloc = url.removeprefix("http://")
    request = AWSRequest(
        method="POST",
        url=f"http://{host or netloc}/",
        data=data,
        headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": f"AWSStepFunctions.{action}"},
    )
    SigV4Auth(Credentials(ACCESS_KEY_ID, secret), "states", REGION).add_auth(request)
    headers = {name: value for name, value in request.prepare().headers.items()}
    headers["Host"] = host or netloc
    address, port = netloc.split(":")
    connection = http.client.HTTPConnection(address, int(port), timeout=60)
    try:
        connection.request("POST", "/", body=sent_body if sent_body is not None else data, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        return Answer(
            response.status, json.loads(raw) if raw else {}, {k.lower(): v for k, v in response.getheaders()}
        )
    finally:
        connection.close()


@pytest.fixture(scope="module")
def sfn(api_stack: ApiStack) -> Any:
    """A boto3 Step Functions client for the module's stack."""
    return api_stack.client()


def unique(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:10]}"


def pass_machine(result: Any = None) -> str:
    """A definition of one Pass state (that returns ``result`` when given)."""
    state: dict[str, Any] = {"Type": "Pass", "End": True}
    if result is not None:
        state["Result"] = result
    return json.dumps({"StartAt": "P", "States": {"P": state}})


def wait_machine(seconds: int = 300) -> str:
    """A definition that waits ``seconds`` (stays RUNNING for the test's length)."""
    return json.dumps({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": seconds, "End": True}}})


def role_arn() -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/test-role"


def finished(sfn: Any, arn: str, timeout: float = FINISH_SECONDS) -> dict[str, Any]:
    """DescribeExecution once the execution is no longer RUNNING."""
    described: dict[str, Any] = {}

    def done() -> bool:
        described.update(sfn.describe_execution(executionArn=arn))
        return described["status"] != "RUNNING"

    wait_until(done, timeout, f"execution {arn} to finish", interval=0.05)
    return described


def eventually(check: Callable[[], bool], what: str, timeout: float = FINISH_SECONDS) -> None:
    wait_until(check, timeout, what, interval=0.05)


__all__ = ["api_stack", "serve_only", "sfn"]
