"""The dragon pipeline's shape as a Dramatiq pipeline: one of the peers bench/peers.py measures.

Three no-op actors per execution (validate -> add -> notify) in a ``pipeline`` whose messages
ignore the step before's result (each step takes its own arguments, as the RQ chain's jobs
do), on Dramatiq's Redis broker with its default middleware and no result backend. Workers:
``dramatiq --processes N --threads 8``. The notify actor PUBLISHes the execution's id on
``chains.CHANNEL``.

The broker is chosen when this module is imported (Dramatiq binds actors to it then): a
RedisBroker on ``BENCH_REDIS_URL`` when that is set, else Dramatiq's in-memory StubBroker, so
importing the module never reaches a Redis by accident. Set the variable before the import.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dramatiq
import redis
from chains import CHANNEL, URL_VARIABLE, PublishedChain, mark_ready, start_group, wait_until_ready
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

QUEUE = "bench-dramatiq"
THREADS = 8
HERE = Path(__file__).resolve().parent

URL = os.environ.get(URL_VARIABLE)
broker: dramatiq.Broker = RedisBroker(url=URL) if URL else StubBroker()
dramatiq.set_broker(broker)


def connection() -> redis.Redis:
    """The broker's own Redis client, for the notify step's PUBLISH."""
    assert isinstance(broker, RedisBroker), f"set {URL_VARIABLE} before importing {__name__}"
    return broker.client


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def validate(record: dict) -> dict:
    """The first step: nothing to do."""
    return {"exists": False}


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def add(record: dict) -> None:
    """The second step: nothing to do."""


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def notify(execution: str) -> None:
    """The last step: say the execution ended, on the channel the driver listens to."""
    connection().publish(CHANNEL, execution)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def ready() -> None:
    """Tell the driver this worker process pulls work."""
    mark_ready(connection())


class Chain(PublishedChain):
    """Sends Dramatiq pipelines through the broker this module was imported with."""

    def enqueue(self, record: dict, execution: str) -> None:
        dramatiq.pipeline(
            [
                validate.message(record),
                # pipe_ignore on a message: it does not take the step before's result.
                add.message_with_options(args=(record,), pipe_ignore=True),
                notify.message_with_options(args=(execution,), pipe_ignore=True),
            ]
        ).run()


def start_workers(redis_url: str, count: int, log: Path) -> list[subprocess.Popen[bytes]]:
    """Start one ``dramatiq`` command running ``count`` worker processes of 8 threads."""
    env = {**os.environ, URL_VARIABLE: redis_url}
    command = [
        sys.executable, "-m", "dramatiq", "dramatiq_chain",
        "--processes", str(count), "--threads", str(THREADS), "--path", str(HERE),
        "--queues", QUEUE,
    ]  # fmt: skip
    return [start_group(command, env, str(HERE), str(log))]


def wait_for_workers(redis_client: redis.Redis, count: int) -> None:
    """Wait until ``count`` worker processes have each run a ``ready`` message."""
    wait_until_ready(redis_client, count, ready.send)
