"""Helpers for the runtime tests: drive orchestrators and an in-process RQ worker until done."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import redis
from rq import Queue
from rq.serializers import JSONSerializer

from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.loop import Orchestrator
from orchestrator.settings import Settings
from worker.process import task_worker

LAMBDA = "arn:aws:lambda:us-east-1:000000000000:function:"


def dragon(name: str) -> dict[str, str]:
    """A valid dragon record named ``name``."""
    return {
        "dragon_name_str": name,
        "description_str": f"{name} breathes fire",
        "family_str": "red",
        "location_city_str": "Seattle",
        "location_state_str": "WA",
        "location_country_str": "USA",
        "location_neighborhood_str": "Fremont",
    }


def one_task_machine(function: str = "ValidateDragon") -> dict:
    """A machine of one Lambda task, for tests that need a task to be in flight."""
    return {
        "StartAt": "Call",
        "States": {"Call": {"Type": "Task", "Resource": LAMBDA + function, "End": True}},
    }


def drive(
    redis_client: redis.Redis,
    settings: Settings,
    orchestrators: list[Orchestrator],
    done: Callable[[Client], bool],
    timeout: float = 30.0,
    with_worker: bool = True,
) -> Client:
    """Run every orchestrator once, then a burst of the task worker, until ``done`` or timeout."""
    worker = task_worker(redis_client, settings) if with_worker else None
    client = Client(redis_client, settings)
    deadline = time.monotonic() + timeout
    while not done(client):
        assert time.monotonic() < deadline, f"not done after {timeout}s: {client.status()}"
        for orchestrator in orchestrators:
            orchestrator.run_once()
        if worker is not None:
            worker.work(burst=True, logging_level="WARNING")
    return client


def all_finished(count: int) -> Callable[[Client], bool]:
    """Done when ``count`` executions exist and none runs."""

    def finished(client: Client) -> bool:
        executions = client.status()["executions"]
        return executions["RUNNING"] == 0 and sum(executions.values()) == count

    return finished


def queued_tasks(redis_client: redis.Redis, settings: Settings) -> list[dict]:
    """The tasks waiting in the RQ task queue, in order."""
    queue = Queue(Keys(settings.prefix).task_queue_name, connection=redis_client, serializer=JSONSerializer)
    return [task for job in queue.jobs for task in job.args[0]]


def create_topic(redis_client: redis.Redis, settings: Settings, name: str) -> None:
    """Make SNS topic ``name`` exist, as CreateTopic makes it (an sns:publish task needs one)."""
    made = json.dumps({"attributes": {}, "tags": []})
    redis_client.hsetnx(Keys(settings.prefix).sns_topics, name, made)
