"""Callback tasks (``.waitForTaskToken``) answered by SendTaskSuccess, SendTaskFailure, SendTaskHeartbeat."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.runtime.callbacks import (
    InvalidToken,
    TaskDoesNotExist,
    TaskTimedOut,
    send_task_failure,
    send_task_heartbeat,
    send_task_success,
)
from orchestrator.runtime.server import RedisServer
from tests.conformance.stack import Stack, running_stack, stack_settings

FUNCTIONS = Path(__file__).resolve().with_name("stack_functions.py")
PREFIX = "cb"
WAIT_SECONDS = 20.0
CLI = "import typer; from producer.cli.tasks import register; app = typer.Typer(); register(app); app()"


def callback_machine(heartbeat_seconds: int | None = None, catch: bool = False) -> dict[str, Any]:
    """One callback task that hands its token to ``remember_task_token``; optionally a Catch."""
    task: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {
            "FunctionName": "remember_task_token",
            "Payload": {"key.$": "$.key", "token.$": "$$.Task.Token"},
        },
        "End": True,
    }
    if heartbeat_seconds is not None:
        task["HeartbeatSeconds"] = heartbeat_seconds
    states: dict[str, Any] = {"Approval": task}
    if catch:
        task["Catch"] = [{"ErrorEquals": ["Rejected"], "ResultPath": "$.rejection", "Next": "Rejected"}]
        states["Rejected"] = {"Type": "Pass", "End": True}
    return {"StartAt": "Approval", "States": states}


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One orchestrator and one worker process, shared by this module's tests."""
    settings, env = stack_settings(redis_server.url, PREFIX)
    with running_stack(settings, env, [FUNCTIONS], tmp_path_factory.mktemp("workers"), workers=1) as running:
        yield running


def start(stack: Stack, definition: dict[str, Any]) -> tuple[str, str]:
    """Start one execution of ``definition``; its name, and the token once the function stored it."""
    machine = f"callback-{uuid.uuid4().hex[:8]}"
    key = f"{PREFIX}-test:token:{machine}"
    stack.client.register_machine(machine, definition)
    name = stack.client.start_execution(machine, {"key": key})
    deadline = time.monotonic() + WAIT_SECONDS
    while (token := stack.client.redis.get(key)) is None:
        assert time.monotonic() < deadline, f"no token stored: {stack.client.describe(name)}"
        time.sleep(0.02)
    return name, token.decode()


def cli(stack: Stack, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run the callback commands in a process of their own, against the stack's Redis and prefix."""
    env = {**os.environ, "REDIS_URL": stack.client.settings.redis_url, "REDSTEP_PREFIX": PREFIX}
    return subprocess.run([sys.executable, "-c", CLI, *arguments], env=env, capture_output=True, text=True)


def finished(stack: Stack, name: str) -> dict[str, Any]:
    return stack.client.wait(name, timeout=WAIT_SECONDS)


def test_send_task_success_completes_the_task_with_its_output(stack: Stack) -> None:
    name, token = start(stack, callback_machine())

    send_task_success(stack.client.redis, stack.client.settings, token, {"approved": True})

    described = finished(stack, name)
    assert (described["status"], described["output"]) == ("SUCCEEDED", {"approved": True})
    assert [e["type"] for e in stack.client.history(name)][-3:] == [
        "TaskSucceeded",
        "TaskStateExited",
        "ExecutionSucceeded",
    ]


def test_the_cli_sends_a_task_failure_that_fails_the_execution(stack: Stack) -> None:
    name, token = start(stack, callback_machine())

    sent = cli(stack, "send-task-failure", token, "--error", "Rejected", "--cause", "not today")

    assert sent.returncode == 0, sent.stderr
    described = finished(stack, name)
    assert [described[k] for k in ("status", "error", "cause")] == ["FAILED", "Rejected", "not today"]


def test_a_task_failure_is_caught_like_any_task_error(stack: Stack) -> None:
    name, token = start(stack, callback_machine(catch=True))

    send_task_failure(stack.client.redis, stack.client.settings, token, "Rejected", "not today")

    described = finished(stack, name)
    assert described["status"] == "SUCCEEDED"
    assert described["output"]["rejection"] == {"Error": "Rejected", "Cause": "not today"}


def test_heartbeats_keep_a_task_alive_until_they_stop_and_it_times_out(stack: Stack) -> None:
    """Given HeartbeatSeconds 2, heartbeats for over two periods keep it waiting; then it lapses."""
    name, token = start(stack, callback_machine(heartbeat_seconds=2))
    kept_alive_until = time.monotonic() + 4.5

    while time.monotonic() < kept_alive_until:
        # Each heartbeat is accepted only while the execution still waits on the token. Sent
        # twenty times a period, so only a stall of nearly two seconds on a busy machine lets
        # the task lapse early.
        send_task_heartbeat(stack.client.redis, stack.client.settings, token)
        time.sleep(0.1)
    assert stack.client.describe(name)["status"] == "RUNNING"

    described = finished(stack, name)
    assert (described["status"], described["error"]) == ("FAILED", "States.HeartbeatTimeout")
    assert "TaskTimedOut" in [e["type"] for e in stack.client.history(name)]
    with pytest.raises(TaskTimedOut, match="no longer waits"):
        send_task_success(stack.client.redis, stack.client.settings, token, {})


def test_the_cli_refuses_a_token_nobody_waits_for_and_a_malformed_one(stack: Stack) -> None:
    unknown = cli(stack, "send-task-success", "no-such-execution:3", "--output", '{"a": 1}')
    malformed = cli(stack, "send-task-heartbeat", "not a token")
    bad_output = cli(stack, "send-task-success", "no-such-execution:3", "--output", "{nope")

    assert (unknown.returncode, malformed.returncode, bad_output.returncode) == (1, 2, 2)
    assert "TaskDoesNotExist" in unknown.stderr
    assert "malformed task token" in malformed.stderr
    assert "not valid JSON" in bad_output.stderr


def test_malformed_and_unknown_tokens_raise_clear_errors(stack: Stack) -> None:
    redis_client, settings = stack.client.redis, stack.client.settings
    with pytest.raises(InvalidToken, match="malformed task token 'abc'"):
        send_task_success(redis_client, settings, "abc", {})
    with pytest.raises(InvalidToken, match="does not end in ':<number>'"):
        send_task_heartbeat(redis_client, settings, "execution:x")
    with pytest.raises(InvalidToken, match="empty"):
        send_task_failure(redis_client, settings, "")
    with pytest.raises(TaskDoesNotExist, match="no execution named 'gone'"):
        send_task_success(redis_client, settings, "gone:4", {})
    assert isinstance(InvalidToken("x"), ValueError)
