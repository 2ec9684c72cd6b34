"""One clock: an orchestrator or worker whose machine clock is far off judges every due time by Redis's.

Each process's ``time.time()`` is set off by ``REDSTEP_FAULT_CLOCK_SKEW_SECONDS``, as on a
machine whose clock is 60 s, or 91 days, ahead of or behind the others'. (libfaketime would
fake the C library's clock too, but it breaks Python's timed waits, so it cannot run these
processes.) Only Redis's ``TIME`` is shared.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from orchestrator.runtime.client import Client
from orchestrator.settings import Settings
from tests.chaos import wait_until

FUNCTIONS = str(Path(__file__).with_name("stack_functions.py"))
LAMBDA = "arn:aws:lambda:us-east-1:000000000000:function:"

DAY = 86_400.0


@contextlib.contextmanager
def process_with_clock(
    env: dict[str, str], skew: float, *args: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``redstep ARGS`` whose wall clock is ``skew`` seconds off."""
    command = [sys.executable, "-m", "producer.cli", *args]
    skewed = {**env, "REDSTEP_FAULT_CLOCK_SKEW_SECONDS": repr(skew)}
    with log.open("ab") as output:
        process = subprocess.Popen(command, env=skewed, stdout=output, stderr=output)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_to_end(
    client: Client, machine: dict, execution_input: dict, timeout: float = 60.0
) -> tuple[dict, float]:
    """Start ``machine`` and wait for it to end; returns its description and the seconds it took here."""
    client.register_machine("Skewed", machine)
    started = time.monotonic()
    name = client.start_execution("Skewed", execution_input)
    described = client.wait(name, timeout)
    return described, time.monotonic() - started


@pytest.fixture
def skew_env(subprocess_env: dict[str, str]) -> dict[str, str]:
    return {**subprocess_env, "REDSTEP_LEASE_SECONDS": "2", "REDSTEP_RETENTION_SWEEP_INTERVAL_SECONDS": "0.2"}


WAIT_THEN_PASS = {
    "StartAt": "Wait",
    "States": {"Wait": {"Type": "Wait", "Seconds": 3, "Next": "Done"}, "Done": {"Type": "Pass", "End": True}},
}


@pytest.mark.parametrize("skew", [60.0, -60.0, 91 * DAY])
def test_a_wait_lasts_its_seconds_whatever_the_orchestrators_clock_says(
    skew_env: dict[str, str], settings: Settings, redis_client: redis.Redis, tmp_path: Path, skew: float
) -> None:
    with process_with_clock(skew_env, skew, "orchestrator", log=tmp_path / "orchestrator.log"):
        described, took = run_to_end(Client(redis_client, settings), WAIT_THEN_PASS, {})
    assert described["status"] == "SUCCEEDED", (tmp_path / "orchestrator.log").read_text()
    assert took >= 3.0, f"a 3 s Wait ended after {took:.2f} s"


def test_a_healthy_task_outlives_its_lease_when_the_clocks_disagree(
    skew_env: dict[str, str], settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Worker 60 s behind, orchestrator 60 s ahead: a 4 s task on 2 s leases ends without Lambda.Unknown."""
    machine = {
        "StartAt": "Sleep",
        "States": {"Sleep": {"Type": "Task", "Resource": LAMBDA + "sleep_and_report", "End": True}},
    }
    with (
        process_with_clock(skew_env, 60.0, "orchestrator", log=tmp_path / "orchestrator.log"),
        process_with_clock(skew_env, -60.0, "worker", "--functions", FUNCTIONS, log=tmp_path / "worker.log"),
    ):
        client = Client(redis_client, settings)
        described, _ = run_to_end(client, machine, {"seconds": 4})
        history = client.history(described["name"])
    assert described["status"] == "SUCCEEDED", (
        described["error"],
        described["cause"],
        [e["type"] for e in history],
    )
    assert [e["type"] for e in history if e["type"].startswith("Lambda")] == [
        "LambdaFunctionScheduled",
        "LambdaFunctionStarted",
        "LambdaFunctionSucceeded",
    ]


def test_an_orchestrator_91_days_ahead_keeps_finished_executions_for_their_retention(
    skew_env: dict[str, str], settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    env = {**skew_env, "REDSTEP_RETENTION_SECONDS": "8"}
    with process_with_clock(env, 91 * DAY, "orchestrator", log=tmp_path / "orchestrator.log"):
        client = Client(redis_client, settings)
        names = []
        for _ in range(3):
            client.register_machine("Quick", {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
            names.append(client.start_execution("Quick", {}))
        for name in names:
            assert client.wait(name, 30)["status"] == "SUCCEEDED"
        # Many sweeps run in this time; a sweep by the orchestrator's own clock would remove them all.
        time.sleep(3)
        assert all(client.describe(name) is not None for name in names)
        # By Redis's clock they go once their 8 s are up.
        wait_until(
            lambda: all(client.describe(name) is None for name in names), 90, "retention to remove them"
        )
