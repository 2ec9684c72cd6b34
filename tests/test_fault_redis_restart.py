"""Redis SIGKILLed in the middle of a run and restarted on its append-only file: nothing lost, nothing twice.

Given a stack of real processes (an orchestrator, two workers) on a private redis-server
with ``appendonly yes`` and ``appendfsync always`` (as compose runs it), when the server is SIGKILLed while
records flow and restarted on the same port and directory, then every record whose
``produce`` returned ends in exactly one execution, run exactly once, and every process
reconnected by itself, logging the outage once rather than once per attempt.

A SIGKILL of the server process then loses no acknowledged write: Redis writes and fsyncs the
AOF before it replies. Under ``everysec`` it would not hold: Redis answers while it holds writes
back behind a background fsync (see tests/test_fault_redis_durability.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.server import RedisServer
from orchestrator.settings import Settings
from producer.produce import produce as send
from producer.records import validate_records
from tests.chaos import wait_until
from tests.processes import stop_all
from tests.test_fault_crash_points import assert_each_execution_ended_exactly_once, dragons, waiting_pipeline

# A run is produced in waves, and a fault is injected once FAULT_AFTER executions of the
# latest wave finished: by progress, never by elapsed time. The next wave is produced only
# after the fault, so however fast the machine, the fault lands before the run is over; a
# wave is large enough that it still has executions in flight when the fault lands.
WAVE = 60
FAULT_AFTER = 5
# DEBUG SLEEP plays a slow Redis; CONFIG SET dir plays a disk Redis cannot write to.
DEBUG = ["--enable-debug-command", "local", "--enable-protected-configs", "local"]
DONE = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


@dataclass
class Stack:
    """A private AOF redis-server and the redstep processes on it, each logging to a file."""

    server: RedisServer
    env: dict[str, str]
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    revived: int = 0
    produced: int = 0

    def produce(self, count: int = WAVE) -> None:
        """``count`` more dragons, with names that none produced before has.

        Sent from this process: a ``redstep produce`` process could still be exiting, on a
        busy machine, when the stack has finished the whole wave.
        """
        client = self.client()
        records = validate_records(dragons(count, first=self.produced), "the wave")
        send(client, self.settings(), records)
        client.close()
        self.produced += count

    def start(self, name: str, *args: str) -> None:
        with (self.logs / f"{name}.log").open("ab") as log:
            command = [sys.executable, "-m", "producer.cli", *args]
            self.processes[name] = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=log, start_new_session=True
            )

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
        """SIGKILL the server and, once the orchestrator noticed, start it again on the same port and data."""
        outages = self.log("orchestrator").count("lost Redis") if "orchestrator" in self.processes else 0
        self.server.kill()
        if "orchestrator" in self.processes:
            # Back before anyone tried it, the server would not have been missed at all.
            noticed = "the orchestrator to notice the server is gone"
            wait_until(lambda: self.log("orchestrator").count("lost Redis") > outages, 30, noticed)
        restarted = RedisServer(
            self.server.port, data_dir=self.server.data_dir, aof=True, appendfsync="always", extra_args=DEBUG
        )
        self.server = restarted.start()

    def stop(self) -> None:
        try:
            stop_all(self.processes.values())
        finally:
            self.server.stop()


@contextmanager
def running_stack(tmp_path: Path, subprocess_env: dict[str, str]) -> Iterator[Stack]:
    """A private AOF redis-server with WaitingPipeline registered; stops whatever it started."""
    data = tmp_path / "redis"
    data.mkdir()
    server = RedisServer(data_dir=data, aof=True, appendfsync="always", extra_args=DEBUG).start()
    knobs = {
        "REDIS_URL": server.url,
        "REDSTEP_VISIBILITY_TIMEOUT_SECONDS": "2",
        "REDSTEP_CLAIM_IDLE_SECONDS": "2",
        "REDSTEP_BATCH_SIZE": "5",
        "REDSTEP_STATE_MACHINE": "WaitingPipeline",
        "REDSTEP_RECONNECT_INITIAL_SECONDS": "0.05",
        "REDSTEP_RECONNECT_MAX_SECONDS": "0.5",
        # A task whose report was lost with the server fails as Lambda.Unknown and is retried
        # once its lease lapses: seconds here rather than the default half minute.
        "REDSTEP_LEASE_SECONDS": "3",
    }
    running = Stack(server, {**subprocess_env, **knobs}, tmp_path)
    try:
        client = running.client()
        Client(client, running.settings()).register_machine("WaitingPipeline", waiting_pipeline())
        client.close()
        yield running
    finally:
        running.stop()


@pytest.fixture
def stack(tmp_path: Path, subprocess_env: dict[str, str]) -> Iterator[Stack]:
    with running_stack(tmp_path, subprocess_env) as running:
        yield running


def start_pipeline(stack: Stack) -> None:
    """Two workers and an orchestrator, and the first wave of records."""
    stack.start("worker-1", "worker")
    stack.start("worker-2", "worker")
    stack.start("orchestrator", "orchestrator")
    stack.produce()


def wait_for_the_fault_point(stack: Stack) -> None:
    """Wait until FAULT_AFTER executions of the latest wave finished (with any before it)."""
    target = stack.produced - WAVE + FAULT_AFTER
    reached = f"{target} of {stack.produced} executions to finish"
    wait_until(lambda: stack.finished() >= target, 60, reached, interval=0.005)


def finished_once_answering(stack: Stack) -> int:
    """How many executions ended, read as soon as the (restarted) server answers."""
    readings: list[int] = []
    wait_until(lambda: readings.append(stack.finished()) or readings[-1] >= 0, 30, "the server to answer")
    return readings[-1]


def inject_mid_run(stack: Stack, fault: Callable[[], object], times: int = 1, waves: int = 8) -> int:
    """Inject ``fault`` at the fault point of a wave until ``times`` of them landed mid-run.

    A fault lands mid-run when, read straight after it, fewer executions have finished than
    were produced. On a machine too busy for the test to look in time, a wave may finish
    before its fault: that fault does not count, and the next wave gets one. Returns how
    many faults were injected in all.
    """
    landed = injected = 0
    while landed < times:
        assert injected < waves, f"only {landed} of {injected} faults landed mid-run, {times} wanted"
        if injected:
            stack.produce()
        wait_for_the_fault_point(stack)
        fault()
        injected += 1
        if finished_once_answering(stack) < stack.produced:
            landed += 1
    return injected


def wait_for_the_whole_run(stack: Stack) -> None:
    """Produce the last wave, then wait until every execution of the run finished."""
    stack.produce()
    run = f"all {stack.produced} executions to finish"
    wait_until(lambda: stack.supervised_finished() == stack.produced, 180, run)
    # An entry read on a connection killed before its reply arrived stays pending until an
    # orchestrator claims it (REDSTEP_CLAIM_IDLE_SECONDS, 2 s here) and acknowledges it; a
    # retried report can be such an entry after its execution ended. The run has settled
    # when nothing is left pending; a lost entry would never settle and fails here.
    settled = "every event and record read on a lost connection to be claimed and acknowledged"
    wait_until(lambda: nothing_pending(stack), 60, settled)


def nothing_pending(stack: Stack) -> bool:
    connection = stack.client()
    try:
        status = Client(connection, stack.settings()).status()
    finally:
        connection.close()
    return status["events"]["pending"] == 0 and status["queue"]["pending"] == 0


def test_a_redis_killed_and_restarted_mid_run_loses_no_record_and_runs_none_twice(
    stack: Stack,
) -> None:
    start_pipeline(stack)

    restarts = inject_mid_run(stack, stack.restart_server)
    wait_for_the_whole_run(stack)
    reconnected = "the reconnect log lines"
    wait_until(lambda: stack.log("orchestrator").count("reconnected to Redis") == restarts, 30, reconnected)

    client = stack.client()
    assert_each_execution_ended_exactly_once(client, stack.settings(), stack.produced)
    client.close()
    assert stack.processes["orchestrator"].poll() is None, "the orchestrator gave up"
    orchestrator_log = stack.log("orchestrator")
    assert orchestrator_log.count("lost Redis") == restarts, orchestrator_log
    assert orchestrator_log.count("reconnected to Redis") == restarts, orchestrator_log


def test_workers_ride_out_a_redis_restart_without_exiting(stack: Stack) -> None:
    start_pipeline(stack)

    inject_mid_run(stack, stack.restart_server)
    wait_for_the_whole_run(stack)

    assert stack.revived == 0, "\n".join(stack.log(n) for n in stack.processes if n.startswith("worker"))


def test_records_produced_before_a_redis_kill_are_all_processed_after_the_restart(stack: Stack) -> None:
    stack.produce()  # nothing consumes yet: the records live only in the AOF

    stack.restart_server()
    start_pipeline_without_producing(stack)
    wait_until(lambda: stack.finished() == WAVE, 180, f"all {WAVE} executions to finish")

    client = stack.client()
    assert_each_execution_ended_exactly_once(client, stack.settings(), WAVE)
    client.close()


def start_pipeline_without_producing(stack: Stack) -> None:
    stack.start("worker-1", "worker")
    stack.start("orchestrator", "orchestrator")


def test_a_redis_that_comes_back_empty_gets_its_consumer_groups_created_again(stack: Stack) -> None:
    stack.start("orchestrator", "orchestrator")
    keys = Keys(stack.env["REDSTEP_PREFIX"])
    client = stack.client()
    wait_until(lambda: client.exists(keys.events) == 1, 30, "the orchestrator to start")

    client.flushall()
    client.xadd(keys.queue("dragons"), {"body": json.dumps({"not": "a dragon"})})
    client.close()

    wait_until(lambda: stack.finished() == 1, 60, "the record sent after FLUSHALL to be processed")
    assert "consumer groups missing" in stack.log("orchestrator")


def test_a_redis_that_comes_back_empty_runs_the_shipped_pipeline_again_without_a_restart(
    stack: Stack,
) -> None:
    stack.env["REDSTEP_STATE_MACHINE"] = "DragonPipeline"
    start_pipeline_without_producing(stack)
    keys = Keys(stack.env["REDSTEP_PREFIX"])
    client = stack.client()
    wait_until(lambda: client.hexists(keys.machines, "DragonPipeline"), 30, "the orchestrator to start")

    client.flushall()  # the definitions go with everything else
    stack.produce(1)

    wait_until(lambda: stack.finished() == 1, 60, "the record sent after FLUSHALL to be processed")
    [execution] = Client(client, stack.settings()).list_executions()
    client.close()
    assert (execution["stateMachine"], execution["status"]) == ("DragonPipeline", "SUCCEEDED"), execution
    assert "registered the shipped definitions again" in stack.log("orchestrator")
