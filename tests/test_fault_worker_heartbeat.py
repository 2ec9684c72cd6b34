"""A frozen worker (SIGSTOP) sends no heartbeat: the task fails with States.HeartbeatTimeout."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import redis

from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import Keys
from orchestrator.settings import Settings
from tests.chaos import HOLD_FUNCTIONS, events_settled, hold_machine, redstep_process, stop, wait_until

WAIT_THREE_SECONDS = {"Type": "Wait", "Seconds": 3, "End": True}


def transitions(client: redis.Redis, keys: Keys, name: str) -> int:
    """How many transitions the execution committed (each heartbeat it takes is one)."""
    return int(client.hget(keys.execution(name), "version") or 0)


def leased(client: redis.Redis, keys: Keys) -> bool:
    """Whether a worker still holds a task's lease (its report removes it in the same call)."""
    return bool(client.zcard(keys.leases))


def beating_stack(
    subprocess_env: dict[str, str], redis_client: redis.Redis, tmp_path: Path, machine: str
) -> tuple[dict[str, str], Client, Keys]:
    """The environment, client and keys of a stack where ``machine`` runs Hold with HeartbeatSeconds 1.

    The lease is far longer than the heartbeat, so a HeartbeatTimeout is what fails a task.
    """
    env = {**subprocess_env, "REDSTEP_LEASE_SECONDS": "60"}
    (tmp_path / "hold.py").write_text(HOLD_FUNCTIONS)
    settings = Settings(redis_url=env["REDIS_URL"], prefix=env["REDSTEP_PREFIX"])
    client = Client(redis_client, settings)
    client.register_machine(machine, hold_machine(HeartbeatSeconds=1))
    return env, client, Keys(settings.prefix)


def test_a_frozen_worker_times_its_task_out_on_heartbeat_and_its_result_after_thawing_is_rejected(
    subprocess_env: dict[str, str], redis_client: redis.Redis, tmp_path: Path
) -> None:
    env, client, keys = beating_stack(subprocess_env, redis_client, tmp_path, "Beating")
    orchestrator = redstep_process(env, "orchestrator")
    worker = redstep_process(env, "worker", "--functions", str(tmp_path / "hold.py"))
    try:
        wait_until(lambda: redis_client.scard(f"{keys.prefix}:workers") == 1, 30, "the worker to start")
        client.start_execution("Beating", {"dir": str(tmp_path)}, name="beating")
        # Given a task whose worker keeps it alive past several heartbeat periods,
        wait_until(lambda: (tmp_path / "attempt-1").exists(), 30, "the task to start")
        wait_until(lambda: transitions(redis_client, keys, "beating") >= 6, 30, "five heartbeats")
        assert client.describe("beating")["status"] == "RUNNING"

        # when the worker is frozen,
        os.kill(worker.pid, signal.SIGSTOP)
        # then the task fails with States.HeartbeatTimeout.
        finished = client.wait("beating", timeout=30)
        assert finished["status"] == "FAILED"
        assert finished["error"] == "States.HeartbeatTimeout"
        history = client.history("beating")

        # And once thawed, the worker's result is rejected: nothing changes.
        (tmp_path / "release-1").touch()
        os.kill(worker.pid, signal.SIGCONT)
        wait_until(lambda: not leased(redis_client, keys), 30, "the late result")
        wait_until(lambda: events_settled(redis_client, keys), 30, "the late result to be consumed")
        assert client.describe("beating")["status"] == "FAILED"
        assert client.history("beating") == history
    finally:
        os.kill(worker.pid, signal.SIGCONT)
        stop(worker)
        stop(orchestrator)


def test_a_task_waiting_in_the_queue_is_not_timed_out_by_its_heartbeat(
    subprocess_env: dict[str, str], redis_client: redis.Redis, tmp_path: Path
) -> None:
    env, client, keys = beating_stack(subprocess_env, redis_client, tmp_path, "Queued")
    orchestrator = redstep_process(env, "orchestrator")
    worker = None
    try:
        # Given a task with HeartbeatSeconds 1 that waits in the queue, no worker there to take it,
        client.start_execution("Queued", {"dir": str(tmp_path)}, name="queued")
        wait_until(lambda: events_settled(redis_client, keys), 30, "the orchestrator to be idle")
        # and three heartbeat periods gone by on the orchestrator's own timers (a Wait of 3 s ended,
        # so any timer due before it fired too),
        client.register_machine("Clock", {"StartAt": "W", "States": {"W": WAIT_THREE_SECONDS}})
        client.start_execution("Clock", {}, name="clock")
        assert client.wait("clock", timeout=30)["status"] == "SUCCEEDED"
        wait_until(lambda: events_settled(redis_client, keys), 30, "the orchestrator to be idle")
        # then it is still waiting, not timed out: its heartbeat clock starts with the task,
        assert client.describe("queued")["status"] == "RUNNING"
        # and once a worker takes it and it finishes, it succeeds.
        worker = redstep_process(env, "worker", "--functions", str(tmp_path / "hold.py"))
        wait_until(lambda: (tmp_path / "attempt-1").exists(), 30, "the task to start")
        (tmp_path / "release-1").touch()
        finished = client.wait("queued", timeout=30)
        assert (finished["status"], finished["output"]["attempt"]) == ("SUCCEEDED", 1)
    finally:
        if worker is not None:
            stop(worker)
        stop(orchestrator)
