"""A commit that loses every race it may (CommitConflict), or that a full Redis refuses, is answered
as AWS answers a temporary failure, ServiceUnavailable (503) with its JSON error body, which
botocore retries; not as a crash.

``redstep serve``'s own app (``build_app``) runs under uvicorn in a thread of the test, on the
session's redis-server, and boto3 talks to it over HTTP as to AWS.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
import redis
import uvicorn
from botocore.config import Config
from botocore.exceptions import ClientError

from orchestrator.api.config import ApiSettings
from orchestrator.api.server import build_app
from orchestrator.runtime.client import Client
from orchestrator.runtime.optimistic import CommitConflict
from orchestrator.runtime.server import RedisServer
from orchestrator.runtime.store import Conflict
from orchestrator.settings import Settings

KEY_ID, SECRET = "AKIDCONFLICT00000001", "conflict/Secret+Key/0000000000000000000"
REGION, ACCOUNT = "us-east-1", "000000000000"
PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
ATTEMPTS = 3


@pytest.fixture
def endpoint(settings: Settings) -> Iterator[str]:
    with serving(settings) as url:
        yield url


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """The URL of ``build_app`` served under uvicorn in a thread, stopped on leaving."""
    app = build_app(settings, ApiSettings(region=REGION, account_id=ACCOUNT), {KEY_ID: SECRET})
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{listening.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        listening.close()


def _sfn(endpoint: str) -> Any:
    return boto3.client(
        "stepfunctions",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        config=Config(retries={"mode": "standard", "total_max_attempts": ATTEMPTS}),
    )


def test_a_start_that_loses_every_race_is_a_retried_service_unavailable(
    endpoint: str, settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    connection = redis.Redis.from_url(settings.redis_url)
    Client(connection, settings).register_machine("Contested", PASS)
    tries: list[str] = []

    def always_loses(self: Client, machine: str, input: Any, name: str, *args: Any, **kwargs: Any) -> bool:
        tries.append(name)
        lost = Conflict("version", self.keys.execution(name))
        raise CommitConflict(f"the start of execution {name}", 5, [lost])

    monkeypatch.setattr(Client, "start_new_execution", always_loses)
    arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:Contested"

    with caplog.at_level(logging.INFO), pytest.raises(ClientError) as refused:
        _sfn(endpoint).start_execution(stateMachineArn=arn, name="contested", input="{}")

    error = refused.value.response
    assert error["Error"]["Code"] == "ServiceUnavailable"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert "lost 5 race(s)" in error["Error"]["Message"]
    # botocore's retry handler knows it for a temporary failure: every attempt was made.
    assert error["ResponseMetadata"]["RetryAttempts"] == ATTEMPTS - 1
    assert tries == ["contested"] * ATTEMPTS
    assert not [record for record in caplog.records if record.exc_info], "logged as a crash"
    connection.close()


def test_a_start_while_redis_is_full_is_a_retried_service_unavailable_naming_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with RedisServer() as server:  # its own server: this one is made to refuse every write
        settings = Settings(redis_url=server.url, prefix="full")
        connection = redis.Redis.from_url(server.url)
        Client(connection, settings).register_machine("Crowded", PASS)
        connection.config_set("maxmemory", 1)  # below what any server holds: full at once
        arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:Crowded"

        with serving(settings) as endpoint, caplog.at_level(logging.INFO):
            with pytest.raises(ClientError) as refused:
                _sfn(endpoint).start_execution(stateMachineArn=arn, name="crowded", input="{}")
            connection.config_set("maxmemory", 0)
            started = _sfn(endpoint).start_execution(stateMachineArn=arn, name="crowded", input="{}")

        error = refused.value.response
        assert error["Error"]["Code"] == "ServiceUnavailable"
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert "refuses writes" in error["Error"]["Message"] and "maxmemory" in error["Error"]["Message"]
        assert error["ResponseMetadata"]["RetryAttempts"] == ATTEMPTS - 1
        assert not [record for record in caplog.records if record.exc_info], "logged as a crash"
        # Nothing of the refused start was written: once Redis has room, the same start is the first.
        assert started["executionArn"].endswith(":crowded")
        history = Client(connection, settings).history("crowded")
        assert [event["type"] for event in history].count("ExecutionStarted") == 1
        connection.close()
