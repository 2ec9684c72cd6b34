"""Redis SIGKILLed in the middle of a run and restarted on its append-only file: nothing lost, nothing twice.

Given a stack of real processes (an orchestrator, two workers) on a private redis-server
with ``appendonly yes`` and ``appendfsync everysec``, when the server is SIGKILLed while
records flow and restarted on the same port and directory, then every record whose
``produce`` returned ends in exactly one execution, run exactly once, and every process
reconnected by itself, logging the outage once rather than once per attempt.

A SIGKILL of the server process loses no acknowledged write: Redis writes the AOF before
it replies, and the kernel keeps what was written; ``everysec`` only risks the last second
when the whole machine goes down.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.server import RedisServer
from orchestrator.settings import Settings
from tests.chaos import wait_until
from tests.test_fault_crash_points import assert_each_execution_ended_exactly_once, produce, waiting_pipeline

RECORDS = 30
DEBUG = ["--enable-debug-command", "local"]  # DEBUG SLEEP plays a slow Redis
DONE = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


@dataclass
class Stack:
    """A private AOF redis-server and the redstep processes on it, each logging to a file."""

    server: RedisServer
    env: dict[str, str]
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    revived: int = 0

    def start(self, name: str, *args: str) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        command = [sys.executable, "-m", "producer.cli", *args]
        self.processes[name] = subprocess.Popen(command, env=self.env, stdout=log, stderr=log)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.server.url)

    def settings(self) -> Settings:
        return Settings(redis_url=self.server.url, prefix=self.env["REDSTEP_PREFIX"])

    def finished(self) -> int:
        keys = Keys(self.env["REDSTEP_PREFIX"])
        client = self.client()
        try:
            return sum(client.zcard(keys.status(status)) for status in DONE)
        except redis.ConnectionError:
            return -1  # the server is away or still loading its data
        finally:
            client.close()

    def revive_workers(self) -> None:
        """Start again every worker that exited, as compose's ``restart: unless-stopped`` would."""
        for name, process in list(self.processes.items()):
            if name.startswith("worker") and process.poll() is not None:
                self.revived += 1
                self.start(name, "worker")

    def supervised_finished(self) -> int:
        self.revive_workers()
        return self.finished()

    def restart_server(self) -> None:
        """SIGKILL the server and start it again on the same port and data directory."""
        self.server.kill()
        time.sleep(0.5)  # long enough for every process to notice the server is gone
        restarted = RedisServer(self.server.port, data_dir=self.server.data_dir, aof=True, extra_args=DEBUG)
        self.server = restarted.start()


@pytest.fixture
def stack(tmp_path: Path, subprocess_env: dict[str, str]) -> Iterator[Stack]:
    data = tmp_path / "redis"
    data.mkdir()
    server = RedisServer(data_dir=data, aof=True, extra_args=DEBUG).start()
    knobs = {
        "REDIS_URL": server.url,
        "REDSTEP_VISIBILITY_TIMEOUT_SECONDS": "2",
        "REDSTEP_CLAIM_IDLE_SECONDS": "2",
        "REDSTEP_BATCH_SIZE": "5",
        "REDSTEP_STATE_MACHINE": "WaitingPipeline",
        "REDSTEP_RECONNECT_INITIAL_SECONDS": "0.05",
        "REDSTEP_RECONNECT_MAX_SECONDS": "0.5",
    }
    running = Stack(server, {**subprocess_env, **knobs}, tmp_path)
    client = running.client()
    Client(client, running.settings()).register_machine("WaitingPipeline", waiting_pipeline())
    client.close()
    yield running
    for process in running.processes.values():
        process.terminate()
    for process in running.processes.values():
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    running.server.stop()


def start_pipeline(stack: Stack, tmp_path: Path) -> None:
    stack.start("worker-1", "worker")
    stack.start("worker-2", "worker")
    stack.start("orchestrator", "orchestrator")
    produce(stack.env, tmp_path)


def test_a_redis_killed_and_restarted_mid_run_loses_no_record_and_runs_none_twice(
    stack: Stack, tmp_path: Path
) -> None:
    start_pipeline(stack, tmp_path)
    wait_until(lambda: stack.finished() >= 3, 60, "the first executions to finish", interval=0.01)

    stack.restart_server()
    finished_at_restart = stack.finished()
    wait_until(lambda: stack.supervised_finished() == RECORDS, 120, f"all {RECORDS} executions to finish")
    wait_until(lambda: "reconnected to Redis" in stack.log("orchestrator"), 30, "the reconnect log line")

    assert finished_at_restart < RECORDS, "Redis was killed after the run, not in the middle of it"
    client = stack.client()
    assert_each_execution_ended_exactly_once(client, stack.settings())
    client.close()
    assert stack.processes["orchestrator"].poll() is None, "the orchestrator gave up"
    orchestrator_log = stack.log("orchestrator")
    assert orchestrator_log.count("lost Redis") == 1, orchestrator_log
    assert orchestrator_log.count("reconnected to Redis") == 1, orchestrator_log


def test_workers_ride_out_a_redis_restart_without_exiting(stack: Stack, tmp_path: Path) -> None:
    start_pipeline(stack, tmp_path)
    wait_until(lambda: stack.finished() >= 3, 60, "the first executions to finish", interval=0.01)

    stack.restart_server()
    wait_until(lambda: stack.supervised_finished() == RECORDS, 120, f"all {RECORDS} executions to finish")

    assert stack.revived == 0, "\n".join(stack.log(n) for n in stack.processes if n.startswith("worker"))


def test_records_produced_before_a_redis_kill_are_all_processed_after_the_restart(
    stack: Stack, tmp_path: Path
) -> None:
    produce(stack.env, tmp_path)  # nothing consumes yet: the records live only in the AOF

    stack.restart_server()
    start_pipeline_without_producing(stack)
    wait_until(lambda: stack.finished() == RECORDS, 120, f"all {RECORDS} executions to finish")

    client = stack.client()
    assert_each_execution_ended_exactly_once(client, stack.settings())
    client.close()


def start_pipeline_without_producing(stack: Stack) -> None:
    stack.start("worker-1", "worker")
    stack.start("orchestrator", "orchestrator")


def test_a_redis_that_comes_back_empty_gets_its_consumer_groups_created_again(stack: Stack) -> None:
    stack.start("orchestrator", "orchestrator")
    keys = Keys(stack.env["REDSTEP_PREFIX"])
    wait_until(lambda: stack.client().exists(keys.events) == 1, 30, "the orchestrator to start")

    stack.client().flushall()
    stack.client().xadd(keys.queue("dragons"), {"body": json.dumps({"not": "a dragon"})})

    wait_until(lambda: stack.finished() == 1, 60, "the record sent after FLUSHALL to be processed")
    assert "consumer groups missing" in stack.log("orchestrator")
