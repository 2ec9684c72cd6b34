"""SIGTERM stops a real ``redstep worker`` promptly whatever it is doing: idle, or waiting for a lost Redis.

The bound on each exit is a correctness bound, not a speed figure: before, a worker that got
SIGTERM while Redis was away slept on in its back-off for good, and an idle one took up to a
minute to leave its command channel.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rq import Queue

from orchestrator.protocol.jobs import TASK_ENTRY_POINT
from orchestrator.runtime.server import RedisServer
from tests.chaos import HOLD_FUNCTIONS, redstep_process, wait_until
from worker.jobs import SERIALIZER, TaskJob

# Far more than a prompt stop needs, far less than the old worker's minute (or forever).
EXIT_BOUND_SECONDS = 20.0


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, which it may stop under the worker."""
    with RedisServer() as server:
        yield server


def start_worker(env: dict[str, str], tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    (tmp_path / "hold.py").write_text(HOLD_FUNCTIONS)
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = redstep_process(env, "worker", "--functions", str(tmp_path / "hold.py"), log=out)
    return worker, log


def logged(log: Path, text: bytes) -> bool:
    return text in log.read_bytes()


def stops_promptly_on_sigterm(worker: subprocess.Popen[bytes], log: Path) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        code = worker.wait(timeout=EXIT_BOUND_SECONDS)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
        raise AssertionError(
            f"the worker outlived SIGTERM by {EXIT_BOUND_SECONDS} s:\n{log.read_text()[-3000:]}"
        ) from None
    assert code == 0, log.read_text()[-3000:]


def test_an_idle_worker_stops_on_sigterm_and_leaves_no_trace_of_itself(
    subprocess_env: dict[str, str], redis_client: redis.Redis, tmp_path: Path
) -> None:
    worker, log = start_worker(subprocess_env, tmp_path)
    wait_until(lambda: logged(log, b"Listening on"), 30, "the worker to wait for jobs")

    stops_promptly_on_sigterm(worker, log)

    assert redis_client.smembers("t:workers") == set()
    assert redis_client.smembers("rq:workers") == set()


def test_a_worker_whose_redis_stopped_while_it_waited_for_a_job_stops_on_sigterm(
    subprocess_env: dict[str, str], own_redis: RedisServer, tmp_path: Path
) -> None:
    worker, log = start_worker({**subprocess_env, "REDIS_URL": own_redis.url}, tmp_path)
    wait_until(lambda: logged(log, b"Listening on"), 30, "the worker to wait for jobs")

    # Given a worker retrying its dequeue against a server that is gone,
    own_redis.stop()
    wait_until(lambda: logged(log, b"could not connect to Redis"), 60, "the worker to notice")

    # when it gets SIGTERM, then it exits at once, though it cannot tell Redis it left.
    stops_promptly_on_sigterm(worker, log)


def test_a_worker_waiting_for_redis_after_losing_it_mid_task_stops_on_sigterm(
    subprocess_env: dict[str, str], own_redis: RedisServer, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(own_redis.url)
    task = {"execution": "e1", "token": "e1:1", "function": "Hold", "payload": {"dir": str(tmp_path)}}
    Queue("t-tasks", connection=client, serializer=SERIALIZER, job_class=TaskJob).enqueue(
        TASK_ENTRY_POINT, [task], "t:events"
    )
    client.close()
    worker, log = start_worker({**subprocess_env, "REDIS_URL": own_redis.url}, tmp_path)
    wait_until(lambda: (tmp_path / "attempt-0").exists(), 30, "the task to start")

    # Given a worker whose Redis went away while its task ran, so its report cannot go out
    # and it waits, with back-off, for Redis to come back,
    own_redis.stop()
    (tmp_path / "release-0").touch()
    wait_until(lambda: logged(log, b"lost Redis"), 90, "the worker to wait for Redis")

    # when it gets SIGTERM, then it exits at once (the task's lease, kept by Redis, covers it).
    stops_promptly_on_sigterm(worker, log)
