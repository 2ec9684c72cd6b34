"""Redriving an execution, as AWS's RedriveExecution: it runs on from the state where it failed.

Given an execution that FAILED because its function raised, when the function is fixed and
the execution is redriven, it runs the failed state again and SUCCEEDS, and its history
shows ExecutionRedriven. A SUCCEEDED (or unknown) execution cannot be redriven.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from orchestrator.runtime.client import Client, ExecutionNotFound, NotRedrivable
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.loop import Orchestrator
from orchestrator.settings import Settings
from tests.runtime_fixtures import LAMBDA, drive
from worker.registry import default_registry

FIXED = "fixed-flag"

MACHINE = {
    "StartAt": "Prepare",
    "States": {
        "Prepare": {"Type": "Pass", "Result": {"ready": True}, "ResultPath": "$.prepared", "Next": "Call"},
        "Call": {"Type": "Task", "Resource": LAMBDA + "Flaky", "End": True},
    },
}


class StillBroken(Exception):
    """Raised by Flaky until the test sets the flag."""


def flaky(event: Any, context: Any) -> dict[str, Any]:
    """Fails until the Redis flag says the function was fixed."""
    if not context.redis.get(event["flag"]):
        raise StillBroken("the function is not fixed yet")
    return {"fixed": True, "seen": event}


@pytest.fixture
def flaky_function(settings: Settings) -> Iterator[None]:
    saved_signals = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    default_registry.register("Flaky", flaky)
    yield
    default_registry.unregister("Flaky")
    for sig, handler in saved_signals.items():
        signal.signal(sig, handler)


def ended(name: str, status: str) -> Any:
    return lambda client: (client.describe(name) or {}).get("status") == status


def test_an_execution_that_failed_in_its_function_succeeds_once_redriven_after_the_fix(
    redis_client: redis.Redis, settings: Settings, flaky_function: None, subprocess_env: dict[str, str]
) -> None:
    client = Client(redis_client, settings)
    client.register_machine("Flaky", MACHINE)
    orchestrator = Orchestrator(redis_client, settings, "o1")
    flag = f"{settings.prefix}:{FIXED}"
    name = client.start_execution("Flaky", {"flag": flag})
    drive(redis_client, settings, [orchestrator], ended(name, "FAILED"))
    assert client.describe(name)["error"] == "StillBroken"

    redis_client.set(flag, "1")
    redriven = subprocess.run(
        [sys.executable, "-m", "producer.cli", "executions", "redrive", name, "--json"],
        env=subprocess_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert redriven.returncode == 0, redriven.stderr
    assert json.loads(redriven.stdout)["status"] == "RUNNING"
    drive(redis_client, settings, [orchestrator], ended(name, "SUCCEEDED"))

    described = client.describe(name)
    assert described["output"]["fixed"] is True
    assert described["output"]["seen"]["prepared"] == {"ready": True}
    assert described["redriveCount"] == 1
    types = [event["type"] for event in client.history(name)]
    assert types.count("ExecutionFailed") == 1 and types.count("ExecutionSucceeded") == 1
    failed, redriven_at = types.index("ExecutionFailed"), types.index("ExecutionRedriven")
    assert failed < redriven_at < types.index("ExecutionSucceeded")
    assert types.count("PassStateEntered") == 1, "the redrive starts at the failed state, not the top"
    keys = Keys(settings.prefix)
    assert redis_client.zscore(keys.status("SUCCEEDED"), name) is not None
    assert redis_client.zscore(keys.status("FAILED"), name) is None


def test_redriving_a_succeeded_execution_is_a_clear_error_and_changes_nothing(
    redis_client: redis.Redis, settings: Settings, flaky_function: None, subprocess_env: dict[str, str]
) -> None:
    client = Client(redis_client, settings)
    client.register_machine("Flaky", MACHINE)
    flag = f"{settings.prefix}:{FIXED}"
    redis_client.set(flag, "1")
    name = client.start_execution("Flaky", {"flag": flag})
    drive(redis_client, settings, [Orchestrator(redis_client, settings, "o1")], ended(name, "SUCCEEDED"))
    history = client.history(name)

    redriven = subprocess.run(
        [sys.executable, "-m", "producer.cli", "executions", "redrive", name],
        env=subprocess_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert redriven.returncode == 1
    assert "cannot redrive" in redriven.stderr and "SUCCEEDED" in redriven.stderr
    assert client.history(name) == history
    with pytest.raises(NotRedrivable):
        client.redrive(name)


def test_redriving_an_execution_that_does_not_exist_is_not_found(
    redis_client: redis.Redis, settings: Settings, subprocess_env: dict[str, str]
) -> None:
    redriven = subprocess.run(
        [sys.executable, "-m", "producer.cli", "executions", "redrive", "nobody"],
        env=subprocess_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert redriven.returncode == 1 and "execution nobody not found" in redriven.stderr
    with pytest.raises(ExecutionNotFound):
        Client(redis_client, settings).redrive("nobody")
