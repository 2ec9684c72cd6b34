"""Worker processes end to end: real subprocesses, a real Redis, JSON jobs only."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from rq import Queue, Worker, suspension

from orchestrator.protocol.jobs import TASK_ENTRY_POINT
from orchestrator.runtime.server import RedisServer, free_port
from tests.processes import stop
from worker.jobs import SERIALIZER, TaskJob

REPO = Path(__file__).resolve().parent.parent
EVENTS = "t:events"
QUEUE = "t-tasks"
SMOK = {"dragon_name_str": "Smok", "family_str": "red", "validation": {"exists": False}}


def task(function: str, n: int, payload: Any = SMOK) -> dict[str, Any]:
    return {
        "execution": f"exec-{n}",
        "token": f"token-{n}",
        "function": function,
        "function_arn": f"arn:aws:lambda:us-east-1:000000000000:function:{function}",
        "payload": payload,
        "attempt": 0,
    }


def task_queue(client: redis.Redis) -> Queue:
    return Queue(QUEUE, connection=client, serializer=SERIALIZER, job_class=TaskJob)


def reports(client: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(fields[b"event"]) for _, fields in client.xrange(EVENTS)]


def run_burst_worker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "worker", "--burst", *args]
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)


@pytest.fixture
def acl_user_url(redis_client: redis.Redis, redis_url: str) -> Any:
    """The test server's URL with an ACL user and password, so masking has something to hide."""
    redis_client.acl_setuser(
        "dragonkeeper",
        enabled=True,
        passwords=["+s3cret-w0rd"],
        keys=["*"],
        channels=["*"],
        commands=["+@all"],
    )
    parts = urlsplit(redis_url)
    yield f"redis://dragonkeeper:s3cret-w0rd@{parts.hostname}:{parts.port}/0"
    redis_client.acl_deluser("dragonkeeper")


def test_a_burst_worker_runs_three_tasks_of_one_json_job_and_reports_them_on_the_stream(
    redis_client: redis.Redis, subprocess_env: dict[str, str], acl_user_url: str
) -> None:
    tasks = [task("ValidateDragon", 1), task("AddDragon", 2), task("AddDragon", 3)]
    task_queue(redis_client).enqueue(TASK_ENTRY_POINT, tasks, EVENTS)

    finished = run_burst_worker({**subprocess_env, "REDIS_URL": acl_user_url})

    assert finished.returncode == 0, finished.stderr
    got = reports(redis_client)
    assert [(r["execution"], r["type"]) for r in got] == [
        ("exec-1", "TaskSucceeded"),
        ("exec-2", "TaskSucceeded"),
        ("exec-3", "TaskFailed"),
    ]
    assert got[0]["output"] == {"exists": False}
    assert got[2]["error"] == "DragonAlreadyExists"
    assert json.loads(got[2]["cause"])["errorMessage"] == "Dragon Smok already exists"
    assert json.loads(redis_client.hget("t:dragons", "Smok")) == {
        "dragon_name_str": "Smok",
        "family_str": "red",
        "execution": "exec-2",
    }
    assert finished.stdout == ""
    assert "dragonkeeper:***@" in finished.stderr
    assert "s3cret-w0rd" not in finished.stderr
    assert task_queue(redis_client).count == 0


def test_a_pickled_job_is_moved_aside_without_being_unpickled_and_the_worker_goes_on(
    redis_client: redis.Redis, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.mkdir, (str(marker),))

    queue = task_queue(redis_client)
    pickled = queue.enqueue(TASK_ENTRY_POINT, [task("ValidateDragon", 1)], EVENTS)
    redis_client.hset(
        pickled.key, "data", zlib.compress(pickle.dumps((TASK_ENTRY_POINT, None, (Payload(),), {})))
    )
    queue.enqueue(TASK_ENTRY_POINT, [task("ValidateDragon", 2)], EVENTS)

    finished = run_burst_worker(subprocess_env)

    assert finished.returncode == 0, finished.stderr
    assert not marker.exists()
    [(_, moved)] = redis_client.xrange("t:malformed")
    assert moved[b"id"] == pickled.id.encode()
    assert moved[b"reason"].startswith(b"its data is not a JSON job")
    assert [r["execution"] for r in reports(redis_client)] == ["exec-2"]
    assert redis_client.llen(queue.key) == 0
    assert not redis_client.keys("t:claimed:*")


SLOW_FUNCTIONS = textwrap.dedent(
    """
    import time

    def Brood(event, context):
        context.redis.set(f"{context.prefix}:brooding", 1)
        time.sleep(1.0)
        return {"brooded": event["seconds"], "remaining_ms": context.get_remaining_time_in_millis() > 0}
    """
)


def test_sigterm_lets_the_running_job_finish_and_report_before_the_worker_exits(
    redis_client: redis.Redis, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    functions = tmp_path / "slow_functions.py"
    functions.write_text(SLOW_FUNCTIONS)
    task_queue(redis_client).enqueue(TASK_ENTRY_POINT, [task("Brood", 1, {"seconds": 1})], EVENTS)
    command = [sys.executable, "-m", "worker", "--functions", str(functions)]
    worker = subprocess.Popen(command, env=subprocess_env, cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not redis_client.exists("t:brooding"):
            assert time.monotonic() < deadline and worker.poll() is None, "the function never started"
            time.sleep(0.02)

        worker.send_signal(signal.SIGTERM)

        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.communicate()
    assert reports(redis_client) == [
        {
            "type": "TaskSucceeded",
            "execution": "exec-1",
            "token": "token-1",
            "output": {"brooded": 1, "remaining_ms": True},
        }
    ]


def test_a_worker_suspended_with_rq_suspend_runs_nothing_until_rq_resume(
    redis_client: redis.Redis, subprocess_env: dict[str, str]
) -> None:
    """RQ's `rq suspend`/`rq resume` still hold a TaskWorker, which checks them once a second, not per job."""
    suspension.suspend(redis_client)
    task_queue(redis_client).enqueue(TASK_ENTRY_POINT, [task("ValidateDragon", 1)], EVENTS)
    command = [sys.executable, "-m", "worker"]
    worker = subprocess.Popen(command, env=subprocess_env, cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not any(w.get_state() == "suspended" for w in Worker.all(connection=redis_client)):
            assert time.monotonic() < deadline and worker.poll() is None, "no suspension seen"
            time.sleep(0.05)
        time.sleep(2.0)  # two of its suspension checks
        assert reports(redis_client) == []
        assert task_queue(redis_client).count == 1

        suspension.resume(redis_client)

        while not reports(redis_client):
            assert time.monotonic() < deadline + 30 and worker.poll() is None, "not run after rq resume"
            time.sleep(0.05)
    finally:
        stop(worker)
        worker.communicate()
    assert [report["type"] for report in reports(redis_client)] == ["TaskSucceeded"]


def wait_for_log(log: Path, text: str, worker: subprocess.Popen[str], timeout: float = 30) -> None:
    """Wait until the worker's stderr (in ``log``) says ``text``; fail if it exits first."""
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert worker.poll() is None, f"the worker exited ({worker.returncode}):\n{log.read_text()}"
        assert time.monotonic() < deadline, f"never logged {text!r}:\n{log.read_text()}"
        time.sleep(0.05)


def worker_before_redis(
    tmp_path: Path, port: int, backoff_seconds: float
) -> tuple[subprocess.Popen[str], Path]:
    """A worker process pointed at ``port``, where nothing listens yet; its stderr goes to a file."""
    env = {
        **os.environ,
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "REDSTEP_PREFIX": "t",
        "REDSTEP_RECONNECT_INITIAL_SECONDS": str(backoff_seconds),
        "REDSTEP_RECONNECT_MAX_SECONDS": str(backoff_seconds),
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp_path / "worker.log"
    with log.open("w") as stderr:
        command = [sys.executable, "-m", "worker", "--name", "early"]
        worker = subprocess.Popen(command, env=env, cwd=REPO, stderr=stderr, text=True)
    return worker, log


def test_a_worker_started_before_redis_waits_for_it_then_registers_and_runs_a_task(tmp_path: Path) -> None:
    """As `docker compose up` may start it: Redis not answering yet is an outage to wait out."""
    port = free_port()
    worker, log = worker_before_redis(tmp_path, port, backoff_seconds=0.2)
    try:
        wait_for_log(log, "worker early lost Redis", worker)
        with pytest.raises(subprocess.TimeoutExpired):
            worker.wait(timeout=3)  # several back-off rounds, and it is still waiting

        with RedisServer(port, data_dir=tmp_path) as server:
            client = redis.Redis.from_url(server.url)
            try:
                task_queue(client).enqueue(TASK_ENTRY_POINT, [task("ValidateDragon", 1)], EVENTS)
                wait_for_log(log, "worker early reconnected to Redis", worker)
                deadline = time.monotonic() + 30
                while not reports(client):
                    assert time.monotonic() < deadline and worker.poll() is None, log.read_text()
                    time.sleep(0.05)
                assert client.sismember("rq:workers", "rq:worker:early")
                assert [r["type"] for r in reports(client)] == ["TaskSucceeded"]
            finally:
                assert stop(worker) == 0, log.read_text()
                client.close()
    finally:
        stop(worker)
    assert log.read_text().count("lost Redis") == 1
    assert "Traceback" not in log.read_text()


def test_sigterm_stops_a_worker_that_waits_for_redis_at_once(tmp_path: Path) -> None:
    """A back-off of a minute between attempts: only the stop request can end the wait in time."""
    worker, log = worker_before_redis(tmp_path, free_port(), backoff_seconds=60)
    try:
        wait_for_log(log, "worker early lost Redis", worker)

        worker.send_signal(signal.SIGTERM)

        assert worker.wait(timeout=10) == 0, log.read_text()
    finally:
        stop(worker)
    assert "warm shut down requested (SIGTERM)" in log.read_text()
    assert "Traceback" not in log.read_text()
