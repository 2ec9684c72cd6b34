"""What every peer's 3-step chain shares: the driver that times it, and how its workers stop.

Each peer (RQ, Celery, Dramatiq) runs the dragon pipeline's shape as three no-op steps
(validate -> add -> notify); its notify step PUBLISHes the execution's id on ``CHANNEL``, as
redstep's notification step does, so the driver learns of each end the moment it happens.
A peer's module supplies how to enqueue one execution (a subclass of :class:`PublishedChain`),
how to start its workers and how to tell that they are ready.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

CHANNEL = "bench-chain-done"
# A set each peer's ``ready`` step adds its worker's id to: how a driver sees every worker pull work.
READY_KEY = "bench-chain-ready"
# The environment variable a peer's worker process reads its Redis URL from.
URL_VARIABLE = "BENCH_REDIS_URL"


@dataclass
class ChainResult:
    """What one run of a chain measured."""

    executions: int
    seconds: float
    latencies: list[float] = field(default_factory=list)  # seconds, one per execution

    @property
    def throughput(self) -> float:
        return self.executions / self.seconds if self.seconds else 0.0


class PublishedChain(ABC):
    """Enqueues chains on one Redis and waits for their notify step's message.

    Args:
        redis_client: the connection the driver listens on (the workers' Redis).
    """

    def __init__(self, redis_client: redis.Redis) -> None:
        self.redis = redis_client

    @abstractmethod
    def enqueue(self, record: dict, execution: str) -> None:
        """Enqueue one execution's three steps; its notify step publishes ``execution``."""

    def start(self, record: dict) -> str:
        """Enqueue one execution under a new id; returns the id."""
        execution = uuid.uuid4().hex
        self.enqueue(record, execution)
        return execution

    def run_load(self, records: list[dict], timeout: float = 600.0) -> ChainResult:
        """Enqueue every record's chain at once; time from the first enqueue to the last end."""
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(CHANNEL)
        started: dict[str, float] = {}
        ended: dict[str, float] = {}
        begin = time.time()
        for record in records:
            started[self.start(record)] = time.time()
            drain(pubsub, ended, 0)
        deadline = time.monotonic() + timeout
        while len(ended) < len(records) and time.monotonic() < deadline:
            drain(pubsub, ended, 0.1)
        pubsub.close()
        seconds = max(ended.values(), default=begin) - begin
        return ChainResult(len(ended), seconds, [ended[e] - started[e] for e in ended if e in started])

    def run_one_at_a_time(self, records: list[dict], timeout: float = 10.0) -> ChainResult:
        """Each record's chain enqueued once the one before it ended."""
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(CHANNEL)
        latencies = []
        begin = time.time()
        for record in records:
            ended: dict[str, float] = {}
            sent = time.time()
            execution = self.start(record)
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


def wait_until_ready(
    redis_client: redis.Redis, count: int, send_ready: Callable[[], object], timeout: float = 60.0
) -> None:
    """Send ``ready`` messages until ``count`` distinct workers have each run one.

    A worker that runs a message has connected and pulls work; a set of their ids is the one
    readiness sign every peer can give, whatever its own registry looks like.

    Args:
        redis_client: the workers' Redis.
        count: how many workers must answer.
        send_ready: a callable that enqueues one ``ready`` message.
        timeout: seconds before giving up.

    Raises:
        TimeoutError: when fewer workers answered within ``timeout`` seconds.
    """
    redis_client.delete(READY_KEY)
    deadline = time.monotonic() + timeout
    while redis_client.scard(READY_KEY) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {count} workers ran a message within {timeout:.0f} s")
        send_ready()
        time.sleep(0.05)
    redis_client.delete(READY_KEY)


def mark_ready(redis_client: redis.Redis) -> None:
    """The ``ready`` step's body: say this worker process pulls work."""
    redis_client.sadd(READY_KEY, os.getpid())


def start_group(command: list[str], env: dict[str, str], cwd: str, log_path: str) -> subprocess.Popen[bytes]:
    """Start a worker command in its own process group (peers fork children of their own)."""
    with open(log_path, "ab") as sink:
        return subprocess.Popen(command, env=env, cwd=cwd, stdout=sink, stderr=sink, start_new_session=True)


def stop_groups(processes: list[subprocess.Popen[bytes]], grace: float = 10.0) -> None:
    """SIGTERM each process's group, then SIGKILL the groups still there after ``grace`` seconds."""
    for process in processes:
        signal_group(process, signal.SIGTERM)
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
        signal_group(process, signal.SIGKILL)
        process.wait()


def signal_group(process: subprocess.Popen[bytes], number: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, number)
