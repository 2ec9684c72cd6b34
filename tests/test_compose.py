"""The real docker-compose stack, built and run through ../shared/compose-lab (host networking).

Slow: it builds the image. The stack's Redis gets a free port, binds 127.0.0.1 and a fresh
password; the project name is unique, so parallel runs share nothing but the image cache.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
import redis

from orchestrator.runtime.server import free_port

ROOT = Path(__file__).resolve().parents[1]
LAB = Path(os.environ.get("COMPOSE_LAB") or ROOT.parent / "shared" / "compose-lab" / "lab.sh")

pytestmark = [
    pytest.mark.slow,
    # A cold build downloads every dependency; the suite's 300 s default is too short for it.
    pytest.mark.timeout(1500),
    pytest.mark.skipif(
        not LAB.exists(), reason=f"compose-lab not found at {LAB}: no Docker engine to run compose"
    ),
]

Lab = Callable[..., str]


@pytest.fixture
def stack() -> Iterator[tuple[Lab, dict[str, str]]]:
    """A started lab, this run's variables, and ``down -v`` afterwards."""
    port = free_port()
    password = secrets.token_hex(8)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("REDIS_", "REDSTEP_"))}
    env.update(
        COMPOSE_PROJECT_NAME=f"redstep{uuid.uuid4().hex[:8]}",
        REDSTEP_IMAGE="redstep:compose-test",
        REDIS_PORT=str(port),
        REDIS_BIND="127.0.0.1",
        REDIS_PASSWORD=password,
        REDSTEP_PREFIX="lab",
        # The api service: its own free port on loopback, and this run's key pair.
        REDSTEP_API_PORT=str(free_port()),
        REDSTEP_API_BIND="127.0.0.1",
        REDSTEP_ACCESS_KEY_ID=f"AKID{secrets.token_hex(8).upper()}",
        REDSTEP_SECRET_ACCESS_KEY=secrets.token_urlsafe(30),
    )

    def lab(*args: str, timeout: float = 300, stdin: str | None = None) -> str:
        result = subprocess.run(
            ["bash", str(LAB), *args],
            cwd=ROOT,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, f"lab.sh {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    assert "DOCKER_HOST=unix://" in lab("start", timeout=900)
    # The host CLI talks to the stack's Redis directly, as the app's ACL user with this run's password.
    cli_env = {**env, "REDIS_URL": f"redis://redstep:{password}@127.0.0.1:{port}/0"}
    try:
        yield lab, cli_env
    finally:
        subprocess.run(
            ["bash", str(LAB), "compose", "down", "-v", "--remove-orphans"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=300,
        )


def host_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "producer.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def succeeded(env: dict[str, str], count: int) -> bool:
    status = json.loads(host_cli(env, "status", "--json").stdout or "{}")
    return status.get("executions", {}).get("SUCCEEDED") == count and status["queue"]["depth"] == 0


def test_the_compose_stack_runs_the_dragon_flow_and_scales_workers(stack: tuple[Lab, dict[str, str]]) -> None:
    lab, env = stack
    lab("compose", "build", timeout=900)
    lab("compose", "up", "-d")
    lab("wait", "--timeout", "120", "redis", "orchestrator", "worker", "api")

    # The CLI inside a container produces the demo file the image ships; the host CLI subscribes.
    subscriber = subprocess.Popen(
        [sys.executable, "-m", "producer.cli", "subscribe", "--json", "--replay", "--count", "25"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        produced = lab(
            "compose", "exec", "-T", "orchestrator", "redstep", "produce", "producer/data/demo25.json"
        )
        assert "enqueued 25 record(s)" in produced
        out, err = subscriber.communicate(timeout=120)
    finally:
        subscriber.kill()
    envelopes = [json.loads(line) for line in out.splitlines()]
    assert Counter(e["Subject"] for e in envelopes) == {"Record inserted": 20, "Already exists": 5}, err
    wait_until(lambda: succeeded(env, 25), 60, "25 SUCCEEDED executions")

    lab("compose", "up", "-d", "--scale", "worker=2")
    lab("wait", "--timeout", "120", "worker")
    assert len(lab("compose", "ps", "-q", "worker").split()) == 2

    def two_workers() -> bool:
        return len(json.loads(host_cli(env, "status", "--json").stdout)["workers"]) == 2

    wait_until(two_workers, 60, "two registered workers")
    records = (ROOT / "producer" / "data" / "dragons.json").read_text()
    assert "enqueued 56 record(s)" in lab(
        "compose", "exec", "-T", "worker", "redstep", "produce", "-", stdin=records
    )
    wait_until(lambda: succeeded(env, 25 + 56), 120, "81 SUCCEEDED executions")

    # Unchanged boto3 code reaches the api service with the run's key pair and starts a dragon.
    sfn = boto3.client(
        "stepfunctions",
        endpoint_url=f"http://127.0.0.1:{env['REDSTEP_API_PORT']}",
        region_name="us-east-1",
        aws_access_key_id=env["REDSTEP_ACCESS_KEY_ID"],
        aws_secret_access_key=env["REDSTEP_SECRET_ACCESS_KEY"],
    )
    machines = {m["name"]: m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
    record = json.loads((ROOT / "producer" / "data" / "dragons.json").read_text())[0]
    started = sfn.start_execution(stateMachineArn=machines["DragonPipeline"], input=json.dumps(record))
    wait_until(
        lambda: sfn.describe_execution(executionArn=started["executionArn"])["status"] != "RUNNING",
        60,
        "the execution started through the api service",
    )
    described = sfn.describe_execution(executionArn=started["executionArn"])
    assert described["status"] == "SUCCEEDED", described

    # The app's ACL user cannot wipe or reconfigure the server, look outside its keys, nor touch
    # other applications' functions and scripts (tests/test_access.py checks every refusal).
    app = redis.Redis.from_url(env["REDIS_URL"])
    refused = [("FLUSHALL",), ("CONFIG", "GET", "maxmemory"), ("SCAN", "0"), ("RANDOMKEY",), ("SELECT", "1")]
    for command in (*refused, ("FUNCTION", "FLUSH"), ("SCRIPT", "FLUSH")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            app.execute_command(*command)
    # Redis 7 refuses DEBUG to every client unless enabled; either refusal keeps it out of reach.
    with pytest.raises(redis.exceptions.ResponseError, match=r"NOPERM|not allowed"):
        app.execute_command("DEBUG", "SLEEP", "0")
    app.close()

    # Redis answers only once what it was told is on disk: a kill -9 of it loses nothing acknowledged.
    admin = redis.Redis(port=int(env["REDIS_PORT"]), password="redstep-admin", decode_responses=True)
    persistence = admin.config_get("append*")
    assert (persistence["appendonly"], persistence["appendfsync"]) == ("yes", "always")
    admin.close()
