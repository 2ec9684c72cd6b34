"""What RQ's own tools show of a worker's jobs, now that its bookkeeping rides in the worker's scripts.

A TaskWorker records RQ's writes of a job's start and end through RQ's own methods and sends
them inside START and the reports' script call (worker.bookkeeping): `rq info`, RQ's
registries and the job's status must read exactly as RQ's own worker leaves them, while the
job runs and after it ended.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue, Worker
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from orchestrator.protocol.jobs import TASK_ENTRY_POINT, rq_job_fields
from orchestrator.protocol.keys import SharedKeys
from tests.processes import stop
from worker.jobs import SERIALIZER, TaskJob

pytestmark = pytest.mark.stack

REPO = Path(__file__).resolve().parent.parent
KEYS = SharedKeys("t")
EVENTS = KEYS.events
HELD_FUNCTIONS = textwrap.dedent(
    """
    import time

    def Hold(event, context):
        context.redis.set(f"{context.prefix}:holding", 1)
        while not context.redis.exists(f"{context.prefix}:release"):
            time.sleep(0.01)
        return {"held": event}
    """
)


def task(n: int) -> dict[str, Any]:
    return {
        "execution": f"exec-{n}",
        "token": f"token-{n}",
        "function": "Hold",
        "function_arn": "arn:aws:lambda:us-east-1:000000000000:function:Hold",
        "payload": n,
        "attempt": 0,
    }


@pytest.fixture
def worker_process(
    redis_client: redis.Redis, subprocess_env: dict[str, str], tmp_path: Path
) -> Iterator[subprocess.Popen[str]]:
    functions = tmp_path / "held_functions.py"
    functions.write_text(HELD_FUNCTIONS)
    command = [sys.executable, "-m", "worker", "--functions", str(functions)]
    process = subprocess.Popen(command, env=subprocess_env, cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        yield process
    finally:
        stop(process)
        process.communicate()


def wait_for(condition: Any, process: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline and process.poll() is None, what
        time.sleep(0.02)


def the_worker(client: redis.Redis) -> Worker:
    [worker] = Worker.all(connection=client)
    return worker


def enqueue_as_the_orchestrators_do(client: redis.Redis, tasks: list[dict[str, Any]], **changes: str) -> Job:
    job_id, fields = rq_job_fields(tasks, KEYS)  # type: ignore[arg-type]
    client.hset(KEYS.rq_job(job_id), mapping={**{k: str(v) for k, v in fields.items()}, **changes})
    client.rpush(KEYS.task_queue, job_id)
    return Job(job_id, connection=client, serializer=SERIALIZER)


@pytest.mark.parametrize(
    "written_by",
    ["orchestrator", "rq-no-result", "rq-keeps-result"],
    ids=[
        "orchestrator's job (read and started in one call)",
        "RQ's enqueue, no result",
        "RQ's enqueue, kept result",
    ],
)
def test_rq_sees_the_job_start_run_and_end_as_its_own_worker_shows_them(
    redis_client: redis.Redis, worker_process: subprocess.Popen[str], written_by: str
) -> None:
    queue = Queue("t-tasks", connection=redis_client, serializer=SERIALIZER, job_class=TaskJob)
    result_ttl = 500 if written_by == "rq-keeps-result" else 0
    if written_by == "orchestrator":
        job = enqueue_as_the_orchestrators_do(redis_client, [task(1)])
    else:
        job = queue.enqueue(TASK_ENTRY_POINT, [task(1)], EVENTS, result_ttl=result_ttl)

    wait_for(lambda: redis_client.exists("t:holding"), worker_process, "the function never started")

    worker = the_worker(redis_client)
    assert (worker.get_state(), worker.get_current_job_id()) == ("busy", job.id)
    assert Job.fetch(job.id, connection=redis_client, serializer=SERIALIZER).get_status() == JobStatus.STARTED
    assert redis_client.ttl(job.key) == -1  # persisted while it runs, as RQ's perform does
    assert StartedJobRegistry(queue=queue).get_job_ids() == [job.id]
    assert len(redis_client.zrange("t:leases", 0, -1)) == 1
    assert redis_client.llen(f"t:claimed:{worker.name}") == 0

    redis_client.set("t:release", 1)
    wait_for(lambda: redis_client.xlen(EVENTS) == 1, worker_process, "the report never came")
    wait_for(lambda: the_worker(redis_client).get_state() == "idle", worker_process, "the worker never idled")

    worker = the_worker(redis_client)
    assert worker.get_current_job_id() is None
    assert worker.successful_job_count == 1 and worker.failed_job_count == 0
    assert worker.total_working_time > 0
    assert StartedJobRegistry(queue=queue).get_job_ids() == []
    assert redis_client.keys("rq:execution:*") == []
    assert redis_client.zcard("t:leases") == 0
    [(_, fields)] = redis_client.xrange(EVENTS)
    assert json.loads(fields[b"event"])["output"] == {"held": 1}
    if result_ttl == 0:
        assert not redis_client.exists(job.key)
    else:
        kept = Job.fetch(job.id, connection=redis_client, serializer=SERIALIZER)
        assert kept.get_status() == JobStatus.FINISHED
        assert 0 < redis_client.ttl(job.key) <= result_ttl


def test_a_job_shaped_as_the_orchestrators_write_it_that_rq_cannot_read_is_moved_aside_unstarted(
    redis_client: redis.Redis, worker_process: subprocess.Popen[str]
) -> None:
    """Shaped as the orchestrators' job but for a date RQ's own reading refuses: never started or run."""
    redis_client.hset(KEYS.execution("exec-1"), "execution", "{}")  # it exists, so it is told
    job = enqueue_as_the_orchestrators_do(redis_client, [task(1)], created_at="the day before yesterday")

    wait_for(lambda: redis_client.xlen("t:malformed") == 1, worker_process, "the job was never moved aside")

    [(_, aside)] = redis_client.xrange("t:malformed")
    assert aside[b"id"].decode() == job.id and b"RQ cannot read its hash" in aside[b"reason"]
    assert redis_client.zcard("t:leases") == 0
    assert redis_client.llen(f"t:claimed:{the_worker(redis_client).name}") == 0
    assert not redis_client.exists("t:holding")  # the function never ran
    [(_, fields)] = redis_client.xrange(EVENTS)
    report = json.loads(fields[b"event"])
    assert (report["type"], report["execution"], report["error"]) == (
        "TaskFailed",
        "exec-1",
        "Lambda.ServiceException",
    )
