"""Graceful stop: SIGTERM lets a worker finish its task within the stop grace; past the grace, or
on a second signal, the worker hands the task back and another worker runs it."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import Keys
from orchestrator.settings import Settings
from tests.chaos import HOLD_FUNCTIONS, hold_machine, redstep_process, stop, wait_until


@pytest.fixture
def stack_env(subprocess_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    """An orchestrator, the Hold machine, and a lease and a stop grace too long to end anything here."""
    env = {**subprocess_env, "REDSTEP_LEASE_SECONDS": "300", "REDSTEP_STOP_GRACE_SECONDS": "300"}
    (tmp_path / "hold.py").write_text(HOLD_FUNCTIONS)
    client = redis.Redis.from_url(env["REDIS_URL"])
    Client(client, Settings(redis_url=env["REDIS_URL"], prefix=env["REDSTEP_PREFIX"])).register_machine(
        "Hold", hold_machine()
    )
    client.close()
    orchestrator = redstep_process(env, "orchestrator")
    yield env
    stop(orchestrator)


def leases(client: redis.Redis, keys: Keys) -> list[str]:
    return [json.loads(m)["token"] for m in client.zrange(keys.leases, 0, -1)]


# A correctness bound: the held task never ends by itself, so only the grace can stop the worker.
EXIT_BOUND_SECONDS = 30.0


def start_worker(env: dict[str, str], tmp_path: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return redstep_process(env, "worker", "--functions", str(tmp_path / "hold.py"), log=out)


def test_a_worker_told_to_stop_finishes_its_task_and_reports_it_before_it_exits(
    stack_env: dict[str, str], redis_client: redis.Redis, tmp_path: Path
) -> None:
    client = Client(
        redis_client, Settings(redis_url=stack_env["REDIS_URL"], prefix=stack_env["REDSTEP_PREFIX"])
    )
    log = tmp_path / "worker.log"
    worker = start_worker(stack_env, tmp_path, log)
    client.start_execution("Hold", {"dir": str(tmp_path)}, name="held")
    wait_until(lambda: (tmp_path / "attempt-1").exists(), 30, "the task to start")

    # When the worker gets SIGTERM in the middle of its task,
    worker.send_signal(signal.SIGTERM)
    wait_until(lambda: b"warm shut down requested" in log.read_bytes(), 30, "the worker to take the signal")
    (tmp_path / "release-1").touch()

    # then it finishes the task, reports it and exits cleanly.
    assert worker.wait(timeout=30) == 0
    finished = client.wait("held", timeout=30)
    assert finished["status"] == "SUCCEEDED"
    assert finished["output"] == {"attempt": 1, "pid": worker.pid}
    assert not [e for e in client.history("held") if e["type"] == "LambdaFunctionFailed"]


def test_a_worker_told_twice_to_stop_hands_its_task_back_and_another_worker_runs_it(
    stack_env: dict[str, str], redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = Settings(redis_url=stack_env["REDIS_URL"], prefix=stack_env["REDSTEP_PREFIX"])
    client, keys = Client(redis_client, settings), Keys(settings.prefix)
    log = tmp_path / "worker.log"
    first = start_worker(stack_env, tmp_path, log)
    client.start_execution("Hold", {"dir": str(tmp_path)}, name="held")
    wait_until(lambda: (tmp_path / "attempt-1").exists(), 30, "the task to start")

    # When the worker is told to stop, and told again (RQ ignores a repeat within a second),
    def stopped_cold() -> bool:
        if first.poll() is None:
            first.send_signal(signal.SIGTERM)
        return first.poll() is not None and b"cold shut down" in log.read_bytes()

    wait_until(stopped_cold, 30, "a cold shutdown", interval=0.3)
    # then it drops its lease and hands the task back, and the next worker runs it as the same attempt.
    assert leases(redis_client, keys) == []
    assert_the_next_worker_runs_it_as_the_same_attempt(stack_env, client, tmp_path)


def test_a_worker_whose_task_outlives_the_stop_grace_hands_it_back_and_exits(
    stack_env: dict[str, str], redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = Settings(redis_url=stack_env["REDIS_URL"], prefix=stack_env["REDSTEP_PREFIX"])
    client, keys = Client(redis_client, settings), Keys(settings.prefix)
    log = tmp_path / "worker.log"
    first = start_worker({**stack_env, "REDSTEP_STOP_GRACE_SECONDS": "1"}, tmp_path, log)
    client.start_execution("Hold", {"dir": str(tmp_path)}, name="held")
    wait_until(lambda: (tmp_path / "attempt-1").exists(), 30, "the task to start")

    # When the worker is told once to stop while its task goes on past the grace,
    first.send_signal(signal.SIGTERM)

    # then it exits without waiting for the task, having handed the task back (its lease gone),
    assert first.wait(timeout=EXIT_BOUND_SECONDS) == 0, log.read_text()[-3000:]
    assert b"cold shut down: the running job outlived the stop grace of 1 s" in log.read_bytes()
    assert leases(redis_client, keys) == []
    assert client.describe("held")["status"] == "RUNNING"
    # and the next worker runs it as the same attempt: no Retry spent, no lease waited out.
    assert_the_next_worker_runs_it_as_the_same_attempt(stack_env, client, tmp_path)


def assert_the_next_worker_runs_it_as_the_same_attempt(
    stack_env: dict[str, str], client: Client, tmp_path: Path
) -> None:
    """A fresh worker runs the handed-back task of "held" to SUCCEEDED: same attempt, no failure recorded."""
    (tmp_path / "attempt-1").unlink()
    second = start_worker(stack_env, tmp_path, tmp_path / "second.log")
    try:
        wait_until(lambda: (tmp_path / "attempt-1").exists(), 30, "the task to run again")
        (tmp_path / "release-1").touch()
        finished = client.wait("held", timeout=30)
    finally:
        stop(second)
    assert finished["status"] == "SUCCEEDED"
    assert finished["output"] == {"attempt": 1, "pid": second.pid}
    assert not [e for e in client.history("held") if e["type"] == "LambdaFunctionFailed"]
