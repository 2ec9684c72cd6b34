"""The dragon pipeline's shape as a plain RQ chain: the baseline bench/pipeline.py compares with.

Three no-op jobs per execution (validate -> add -> notify) chained with ``depends_on`` (rq 2.x
semantics), run by ``rq worker --worker-class rq.worker.SimpleWorker`` processes with the JSON
serializer. The notify job PUBLISHes the execution's id, as redstep's notification step does,
so the driver learns of the end the moment it happens.

The job functions live here so that the RQ workers can import them (``rq worker --path bench``).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import redis
from chains import CHANNEL, PublishedChain
from rq import Queue, Worker, get_current_job
from rq.serializers import JSONSerializer

QUEUE = "bench-chain"
HERE = Path(__file__).resolve().parent


def validate(record: dict) -> dict:
    """The first step: nothing to do."""
    return {"exists": False}


def add(record: dict) -> None:
    """The second step: nothing to do."""


def notify(execution: str) -> None:
    """The last step: say the execution ended, on the channel the driver listens to."""
    job = get_current_job()
    assert job is not None
    job.connection.publish(CHANNEL, execution)


class Chain(PublishedChain):
    """Enqueues RQ chains on one Redis; the driver's timing is :class:`chains.PublishedChain`'s.

    Args:
        redis_client: the connection (its database is the workers').
    """

    def __init__(self, redis_client: redis.Redis) -> None:
        super().__init__(redis_client)
        self.queue = Queue(QUEUE, connection=redis_client, serializer=JSONSerializer)

    def enqueue(self, record: dict, execution: str) -> None:
        """Enqueue one execution's three jobs, each waiting on the one before."""
        first = self.queue.enqueue(f"{__name__}.validate", record, result_ttl=0)
        second = self.queue.enqueue(f"{__name__}.add", record, depends_on=first, result_ttl=0)
        self.queue.enqueue(f"{__name__}.notify", execution, depends_on=second, result_ttl=0)


def start_workers(redis_url: str, count: int, log: Path) -> list[subprocess.Popen[bytes]]:
    """Start ``count`` SimpleWorker processes on the chain's queue, JSON serializer."""
    command = [
        sys.executable, "-m", "rq.cli", "worker", QUEUE,
        "--url", redis_url,
        "--worker-class", "rq.worker.SimpleWorker",
        "--serializer", "rq.serializers.JSONSerializer",
        "--path", str(HERE),
        "--logging_level", "WARNING",
    ]  # fmt: skip
    with log.open("ab") as sink:
        return [subprocess.Popen(command, stdout=sink, stderr=sink) for _ in range(count)]


def wait_for_workers(redis_client: redis.Redis, count: int, timeout: float = 30.0) -> None:
    """Wait until ``count`` workers have registered with RQ.

    Raises:
        TimeoutError: when fewer registered within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while Worker.count(connection=redis_client) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {count} RQ workers started")
        time.sleep(0.05)
