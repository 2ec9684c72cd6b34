"""The dragon pipeline's shape as a Celery chain: one of the peers bench/peers.py measures.

Three no-op tasks per execution (validate -> add -> notify) in a ``chain`` of immutable
signatures (each step takes its own arguments, as the RQ chain's jobs do), JSON serializer, no
result backend (a chain carries its next steps in the message). Workers: ``celery worker
--pool solo``, one process each, without gossip, mingle and heartbeat (cluster chatter a
benchmark does not need). The notify task PUBLISHes the execution's id on ``chains.CHANNEL``.

The worker processes import this module (``celery -A celery_chain``) and read their Redis from
``BENCH_REDIS_URL``, as the driver does (set it before the import); without it the app points
at Celery's in-memory transport, so importing the module never reaches a Redis by accident.
"""

from __future__ import annotations

import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import redis
from celery import Celery, chain
from chains import CHANNEL, URL_VARIABLE, PublishedChain, mark_ready, start_group, wait_until_ready

QUEUE = "bench-celery"
HERE = Path(__file__).resolve().parent

app = Celery("celery_chain", broker=os.environ.get(URL_VARIABLE, "memory://"))
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_default_queue=QUEUE,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@cache
def connection() -> redis.Redis:
    """This worker process's own Redis connection, for the notify step's PUBLISH."""
    return redis.Redis.from_url(app.conf.broker_url)


@app.task(name="bench.validate")
def validate(record: dict) -> dict:
    """The first step: nothing to do."""
    return {"exists": False}


@app.task(name="bench.add")
def add(record: dict) -> None:
    """The second step: nothing to do."""


@app.task(name="bench.notify")
def notify(execution: str) -> None:
    """The last step: say the execution ended, on the channel the driver listens to."""
    connection().publish(CHANNEL, execution)


@app.task(name="bench.ready")
def ready() -> None:
    """Tell the driver this worker pulls work."""
    mark_ready(connection())


class Chain(PublishedChain):
    """Sends Celery chains through the broker this module was imported with."""

    def enqueue(self, record: dict, execution: str) -> None:
        chain(validate.si(record), add.si(record), notify.si(execution)).apply_async()


def start_workers(redis_url: str, count: int, log: Path) -> list[subprocess.Popen[bytes]]:
    """Start ``count`` solo-pool worker processes, each under its own node name."""
    env = {**os.environ, URL_VARIABLE: redis_url}
    command = [
        sys.executable, "-m", "celery", "-A", "celery_chain", "worker",
        "--pool", "solo", "--queues", QUEUE,
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--loglevel", "WARNING",
    ]  # fmt: skip
    return [
        start_group([*command, "--hostname", f"bench{number}@%h"], env, str(HERE), str(log))
        for number in range(count)
    ]


def wait_for_workers(redis_client: redis.Redis, count: int) -> None:
    """Wait until ``count`` worker processes have each run a ``ready`` task."""
    wait_until_ready(redis_client, count, ready.delay)
