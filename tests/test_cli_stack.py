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
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import boto3
import botocore.exceptions
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

    def __init__(self, env: dict[str, str], workers: int, tmp_path: Path, *args: str) -> None:
        # Its API on a free port unless the test names one: the machine runs other tests' stacks too.
        self.env = env = {"REDSTEP_API_PORT": "0", **env}
        self.out_path = tmp_path / "up.out"
        self.err_path = tmp_path / "up.err"
        with self.out_path.open("w") as out, self.err_path.open("w") as err:
            self.process = subprocess.Popen(
                redstep("up", "--workers", str(workers), *args), env=env, stdout=out, stderr=err
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

    def start(env: dict[str, str], workers: int = 2, *args: str) -> Up:
        up = Up(env, workers, tmp_path, *args)
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


def printed_exports(up: Up) -> dict[str, str]:
    """The ``export NAME=value`` lines ``up`` printed, one variable each."""
    lines = [line for line in up.out_path.read_text().splitlines() if line.startswith("export AWS_")]
    return dict(line.removeprefix("export ").split("=", 1) for line in lines)


def test_up_starts_the_api_with_a_new_key_pair_and_boto3_runs_on_the_printed_exports_alone(
    start_up: Callable[..., Up], subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    env = {
        k: v
        for k, v in subprocess_env.items()
        if not k.startswith(("AWS_", "REDSTEP_ACCESS", "REDSTEP_SECRET"))
    }
    up = start_up(env, workers=1)
    exports = printed_exports(up)
    assert set(exports) == {
        "AWS_ENDPOINT_URL",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    }
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", exports["AWS_ENDPOINT_URL"])
    assert re.search(rf"^api\s+{re.escape(exports['AWS_ENDPOINT_URL'])} ", up.out_path.read_text(), re.M)
    secret = exports["AWS_SECRET_ACCESS_KEY"]
    assert len(secret) >= 40 and len(exports["AWS_ACCESS_KEY_ID"]) == 20

    # Unchanged boto3 code, configured from exactly those values.
    sfn = boto3.client(
        "stepfunctions",
        endpoint_url=exports["AWS_ENDPOINT_URL"],
        region_name=exports["AWS_DEFAULT_REGION"],
        aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret,
    )
    machines = {m["name"]: m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
    assert "DragonPipeline" in machines
    record = json.loads(DEMO.read_text())[0]
    started = sfn.start_execution(
        stateMachineArn=machines["DragonPipeline"], name=f"boto-{os.getpid()}", input=json.dumps(record)
    )
    status = wait_for(
        lambda: (
            (s := sfn.describe_execution(executionArn=started["executionArn"])["status"]) != "RUNNING" and s
        ),
        90,
        "the execution started through the API to finish",
    )
    assert status == "SUCCEEDED"
    wrong = boto3.client(
        "stepfunctions",
        endpoint_url=exports["AWS_ENDPOINT_URL"],
        region_name=exports["AWS_DEFAULT_REGION"],
        aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret[::-1],
    )
    with pytest.raises(botocore.exceptions.ClientError, match="InvalidSignatureException"):
        wrong.list_state_machines()

    # The secret is printed once, on stdout: no log, no runtime file, no command line holds it,
    # and of the children only the API has it in its environment.
    assert up.out_path.read_text().count(secret) == 1
    assert secret not in up.err_path.read_text()
    runtime_dir = Path(env["REDSTEP_RUNTIME_DIR"])
    assert all(secret not in path.read_text() for path in runtime_dir.glob("*") if path.is_file())
    holders = []
    for pid in [up.process.pid, *up.children]:
        assert secret.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
        if secret.encode() in Path(f"/proc/{pid}/environ").read_bytes():
            holders.append(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"))
    assert [cmdline[3] for cmdline in holders] == [b"serve"]
    assert_stopped_cleanly(up)


def test_up_refuses_a_taken_api_port_before_starting_anything(subprocess_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = run(subprocess_env, "up", "--api-port", str(port))
    assert refused.returncode == 2
    assert refused.stderr.strip().startswith(f"redstep up: cannot listen on 127.0.0.1:{port} for the API")
    assert "--no-api" in refused.stderr
    assert refused.stdout == ""


def test_up_with_no_api_starts_no_serve_and_prints_no_aws_exports(
    start_up: Callable[..., Up], subprocess_env: dict[str, str]
) -> None:
    up = start_up(subprocess_env, 1, "--no-api")
    assert "export AWS_" not in up.out_path.read_text()
    assert not re.search(r"^api ", up.out_path.read_text(), re.M)
    assert len(up.children) == 2  # the orchestrator and the worker
    assert not any(b"serve" in Path(f"/proc/{pid}/cmdline").read_bytes() for pid in up.children)
    assert up.interrupt() == 0, up.err_path.read_text()
