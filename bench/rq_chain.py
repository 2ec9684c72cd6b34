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
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import redis
from rq import Queue, Worker, get_current_job
from rq.serializers import JSONSerializer

QUEUE = "bench-chain"
CHANNEL = "bench-chain-done"
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


@dataclass
class ChainResult:
    """What one run of the chain measured."""

    executions: int
    seconds: float
    latencies: list[float] = field(default_factory=list)  # seconds, one per execution

    @property
    def throughput(self) -> float:
        return self.executions / self.seconds if self.seconds else 0.0


class Chain:
    """Enqueues chains on one Redis and waits for them to end.

    Args:
        redis_client: the connection (its database is the workers').
    """

    def __init__(self, redis_client: redis.Redis) -> None:
        self.redis = redis_client
        self.queue = Queue(QUEUE, connection=redis_client, serializer=JSONSerializer)

    def enqueue(self, record: dict) -> str:
        """Enqueue one execution's three jobs; returns the execution's id."""
        execution = uuid.uuid4().hex
        first = self.queue.enqueue(f"{__name__}.validate", record, result_ttl=0)
        second = self.queue.enqueue(f"{__name__}.add", record, depends_on=first, result_ttl=0)
        self.queue.enqueue(f"{__name__}.notify", execution, depends_on=second, result_ttl=0)
        return execution

    def run_load(self, records: list[dict], timeout: float = 600.0) -> ChainResult:
        """Enqueue every record's chain at once; time from the first enqueue to the last end."""
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(CHANNEL)
        started: dict[str, float] = {}
        ended: dict[str, float] = {}
        begin = time.time()
        for record in records:
            started[self.enqueue(record)] = time.time()
            drain(pubsub, ended, 0)
        deadline = time.monotonic() + timeout
        while len(ended) < len(records) and time.monotonic() < deadline:
            drain(pubsub, ended, 0.1)
        pubsub.close()
        seconds = max(ended.values(), default=begin) - begin
        return ChainResult(len(ended), seconds, [ended[e] - started[e] for e in ended])

    def run_one_at_a_time(self, records: list[dict], timeout: float = 10.0) -> ChainResult:
        """Each record's chain enqueued once the one before it ended."""
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(CHANNEL)
        latencies = []
        begin = time.time()
        for record in records:
            ended: dict[str, float] = {}
            sent = time.time()
            execution = self.enqueue(record)
            deadline = time.monotonic() + timeout
            while execution not in ended and time.monotonic() < deadline:
                drain(pubsub, ended, 0.05)
            if execution in ended:
                latencies.append(ended[execution] - sent)
        pubsub.close()
        return ChainResult(len(latencies), time.time() - begin, latencies)


def drain(pubsub: redis.client.PubSub, ended: dict[str, float], timeout: float) -> None:
    """Note the end time of every execution announced on the channel, waiting up to ``timeout``."""
    message = pubsub.get_message(timeout=timeout)
    while message is not None:
        if message.get("type") == "message":
            ended[message["data"].decode()] = time.time()
        message = pubsub.get_message(timeout=0)


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
