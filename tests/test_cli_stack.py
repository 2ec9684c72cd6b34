"""The acceptance test of issue 2: ``redstep up``, ``subscribe`` and ``produce`` as a user runs them.

Every command is the real CLI in its own process. One variant reuses the test session's
Redis through ``REDIS_URL``; the other lets ``up`` start and stop a redis-server of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import redis

from tests.processes import descendants
from worker.dragons import DragonStore

T = TypeVar("T")

DEMO = Path(__file__).resolve().parents[1] / "producer" / "data" / "demo25.json"


def redstep(*args: str) -> list[str]:
    return [sys.executable, "-m", "producer.cli", *args]


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(redstep(*args), env=env, capture_output=True, text=True, timeout=60)


def children_of(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Up:
    """A running ``redstep up --workers N``, its output in files, and its child processes."""

    def __init__(self, env: dict[str, str], workers: int, tmp_path: Path) -> None:
        self.env = env
        self.out_path = tmp_path / "up.out"
        self.err_path = tmp_path / "up.err"
        with self.out_path.open("w") as out, self.err_path.open("w") as err:
            self.process = subprocess.Popen(
                redstep("up", "--workers", str(workers)), env=env, stdout=out, stderr=err
            )
        self.children: list[int] = []

    def wait_until_ready(self) -> None:
        """Return once ``up`` printed its summary; note its address and child processes."""
        wait_for(
            lambda: "next:" in self.out_path.read_text() or self.process.poll() is not None, 60, "up to start"
        )
        assert self.process.poll() is None, self.err_path.read_text()
        self.redis_url = re.search(r"^redis\s+(\S+)", self.out_path.read_text(), re.M).group(1)  # type: ignore[union-attr]
        self.client_env = {**self.env, "REDIS_URL": self.redis_url}
        self.children = children_of(self.process.pid)

    def interrupt(self, timeout: float = 60) -> int:
        """Ctrl-C, as a terminal sends it to the foreground process."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=timeout)

    def kill_leftovers(self) -> None:
        """SIGKILL ``up`` and every process under it that is still there."""
        for pid in [self.process.pid, *self.children, *descendants(self.process.pid)]:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):  # it ended since we looked
                    os.kill(pid, signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def start_up(tmp_path: Path) -> Iterator[Callable[..., Up]]:
    started: list[Up] = []

    def start(env: dict[str, str], workers: int = 2) -> Up:
        up = Up(env, workers, tmp_path)
        started.append(up)
        up.wait_until_ready()
        return up

    try:
        yield start
    finally:
        for up in started:
            up.kill_leftovers()


def dragon_attribute(envelope: dict) -> str:
    """The ``dragon_name`` message attribute, as SNS delivers it (``Value``) or takes it (``StringValue``)."""
    attribute = envelope["MessageAttributes"]["dragon_name"]
    return attribute.get("Value", attribute.get("StringValue"))


def run_the_dragon_flow(up: Up, prefix: str) -> None:
    """subscribe + produce demo25, then check notifications, executions, the store and the queues."""
    env = up.client_env
    wait_for(lambda: run(env, "check").returncode == 0, 60, "redstep check to pass")
    subscriber = subprocess.Popen(
        redstep("subscribe", "--json", "--replay", "--count", "25"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        produced = run(env, "produce", str(DEMO))
        assert produced.returncode == 0, produced.stderr
        assert produced.stdout.strip() == "enqueued 25 record(s) on queue dragons"
        out, err = subscriber.communicate(timeout=90)
    finally:
        subscriber.kill()
        subscriber.wait()
    assert subscriber.returncode == 0, err

    # Then: 20 "Record inserted" and 5 "Already exists", each naming its dragon.
    envelopes = [json.loads(line) for line in out.splitlines()]
    assert len(envelopes) == 25
    assert Counter(e["Subject"] for e in envelopes) == {"Record inserted": 20, "Already exists": 5}
    names = [record["dragon_name_str"] for record in json.loads(DEMO.read_text())]
    named = [dragon_attribute(e) for e in envelopes]
    assert Counter(named) == Counter(names)
    assert all(name in e["Message"] for name, e in zip(named, envelopes, strict=True))
    assert {n for n, e in zip(named, envelopes, strict=True) if e["Subject"] == "Record inserted"} == set(
        names
    )
    for envelope in envelopes:
        assert {"MessageId", "TopicArn", "Subject", "Message", "Timestamp", "MessageAttributes"} <= set(
            envelope
        )

    # And: 25 SUCCEEDED executions, 20 dragons in the store, nothing left in any queue.
    def all_succeeded() -> list[dict] | None:
        listed = json.loads(run(env, "executions", "list", "--json").stdout)
        return listed if [e["status"] for e in listed] == ["SUCCEEDED"] * 25 else None

    executions = wait_for(all_succeeded, 30, "25 SUCCEEDED executions")
    history = json.loads(run(env, "executions", "history", executions[0]["name"], "--json").stdout)
    assert history[0]["type"] == "ExecutionStarted"
    assert history[-1]["type"] == "ExecutionSucceeded"
    client = redis.Redis.from_url(up.redis_url)
    try:
        assert DragonStore(client, prefix).count() == 20
    finally:
        client.close()

    def drained() -> dict | None:
        status = json.loads(run(env, "status", "--json").stdout)
        queue, events, tasks = status["queue"], status["events"], status["tasks"]
        empty = queue["depth"] == queue["pending"] == queue["dead_letters"] == 0
        empty = empty and events["depth"] == events["pending"] == tasks["depth"] == 0
        return status if empty and status["malformed"] == 0 else None

    status = wait_for(drained, 30, "every queue to be empty")
    assert status["executions"]["SUCCEEDED"] == 25
    assert len(status["workers"]) == 2


def assert_stopped_cleanly(up: Up) -> None:
    assert up.interrupt() == 0, up.err_path.read_text()
    assert len(up.children) >= 3
    leftovers = [pid for pid in up.children if alive(pid)]
    assert leftovers == [], f"orphans after Ctrl-C: {leftovers}"
    assert "stack stopped" in up.err_path.read_text()


def test_up_with_redis_url_runs_the_dragon_demo_end_to_end_and_stops_cleanly(
    start_up: Callable[..., Up], subprocess_env: dict[str, str]
) -> None:
    up = start_up(subprocess_env)
    assert up.redis_url == subprocess_env["REDIS_URL"]
    run_the_dragon_flow(up, "t")
    assert_stopped_cleanly(up)


def test_up_without_redis_url_starts_and_stops_its_own_redis_server(start_up: Callable[..., Up]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "REDSTEP_"))}
    env["REDSTEP_RUNTIME_DIR"] = os.environ["REDSTEP_RUNTIME_DIR"]
    env["REDSTEP_PREFIX"] = "own"
    up = start_up(env)
    redis_children = [
        pid for pid in up.children if "redis-server" in Path(f"/proc/{pid}/cmdline").read_text()
    ]
    assert len(redis_children) == 1
    run_the_dragon_flow(up, "own")
    assert_stopped_cleanly(up)
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(up.redis_url, socket_connect_timeout=1).ping()
