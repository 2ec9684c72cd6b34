"""A worker SIGKILLed mid-task: its lease fails the task as Lambda.Unknown, and Retry runs it elsewhere."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from orchestrator.protocol.keys import EVENT_FIELD
from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import Keys
from orchestrator.settings import Settings
from tests.chaos import HOLD_FUNCTIONS, events_settled, hold_machine, redstep_process, stop, wait_until
from tests.doctor_helpers import assert_consistent

LEASE_SECONDS = 1.0


@pytest.fixture
def fault_env(subprocess_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """A one-second lease, so a dead worker's task fails within seconds."""
    (tmp_path / "hold.py").write_text(HOLD_FUNCTIONS)
    return {**subprocess_env, "REDSTEP_LEASE_SECONDS": str(LEASE_SECONDS), "REDSTEP_CLAIM_IDLE_SECONDS": "2"}


@pytest.fixture
def orchestrator(fault_env: dict[str, str]) -> Iterator[None]:
    process = redstep_process(fault_env, "orchestrator")
    yield
    stop(process)


def leases(client: redis.Redis, keys: Keys) -> list[dict[str, str]]:
    return [json.loads(m) for m in client.zrange(keys.leases, 0, -1)]


def test_a_worker_killed_mid_task_fails_it_as_lambda_unknown_and_the_retry_runs_on_another_worker(
    fault_env: dict[str, str], orchestrator: None, redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = Settings(redis_url=fault_env["REDIS_URL"], prefix=fault_env["REDSTEP_PREFIX"])
    client, keys = Client(redis_client, settings), Keys(settings.prefix)
    retry = [{"ErrorEquals": ["Lambda.Unknown"], "IntervalSeconds": 1, "MaxAttempts": 2}]
    client.register_machine("Hold", hold_machine(Retry=retry))
    functions = ("--functions", str(tmp_path / "hold.py"))
    first = redstep_process(fault_env, "worker", *functions)
    client.start_execution("Hold", {"dir": str(tmp_path)}, name="held")

    # Given the first attempt running on a worker that holds its lease,
    wait_until(lambda: (tmp_path / "attempt-1").exists(), 30, "the first attempt to start")
    [lease] = leases(redis_client, keys)
    # when that worker is SIGKILLed and another one starts,
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    second = redstep_process(fault_env, "worker", *functions)
    try:
        # then the lease fails the task as Lambda.Unknown and the Retry runs it on the new worker.
        wait_until(lambda: (tmp_path / "attempt-2").exists(), 30, "the retry to start")
        assert (tmp_path / "attempt-2").read_text() == str(second.pid)
        failed = [e for e in client.history("held") if e["type"] == "LambdaFunctionFailed"]
        assert [e["error"] for e in failed] == ["Lambda.Unknown"]
        assert "stopped responding" in json.loads(failed[0]["cause"])["errorMessage"]

        # And a late result from the dead attempt changes nothing.
        late = {
            "type": "TaskSucceeded",
            "execution": "held",
            "token": lease["token"],
            "output": {"late": True},
        }
        redis_client.xadd(keys.events, {EVENT_FIELD: json.dumps(late)})
        wait_until(lambda: events_settled(redis_client, keys), 30, "the late result to be consumed")
        assert client.describe("held")["status"] == "RUNNING"

        (tmp_path / "release-2").touch()
        finished = client.wait("held", timeout=30)
    finally:
        stop(second)
    assert finished["status"] == "SUCCEEDED"
    assert finished["output"] == {"attempt": 2, "pid": second.pid}
    assert leases(redis_client, keys) == []
    assert_consistent(redis_client, settings)


def test_a_job_a_dead_worker_dequeued_but_never_started_goes_back_to_the_queue_and_runs(
    fault_env: dict[str, str], orchestrator: None, redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = Settings(redis_url=fault_env["REDIS_URL"], prefix=fault_env["REDSTEP_PREFIX"])
    client, keys = Client(redis_client, settings), Keys(settings.prefix)
    client.register_machine("Hold", hold_machine())
    client.start_execution("Hold", {"dir": str(tmp_path)}, name="held")
    # Given a job that a worker took off the queue and died holding, before it leased anything,
    ghost = f"{keys.prefix}:claimed:ghost"
    assert redis_client.lmove(keys.task_queue, ghost) is not None
    redis_client.sadd(f"{keys.prefix}:workers", "ghost")

    # when a live worker looks for dead ones,
    worker = redstep_process(fault_env, "worker", "--functions", str(tmp_path / "hold.py"))
    try:
        # then the job goes back to the queue and runs, as the same attempt: no task failed.
        wait_until(lambda: (tmp_path / "attempt-1").exists(), 30, "the job to run")
        (tmp_path / "release-1").touch()
        finished = client.wait("held", timeout=30)
    finally:
        stop(worker)
    assert finished["status"] == "SUCCEEDED"
    assert not [e for e in client.history("held") if e["type"] == "LambdaFunctionFailed"]
    assert redis_client.llen(ghost) == 0
    assert not redis_client.sismember(f"{keys.prefix}:workers", "ghost")
