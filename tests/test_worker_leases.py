"""A task's lease is taken even when the connection is lost as the job starts, on a real Redis.

Until START runs, a dequeued job sits only in its worker's claimed list, and nobody gives
back the claimed jobs of a worker that is alive: a START lost to a dropped connection would
leave the job's tasks waiting forever, with no lease to fail them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from orchestrator.runtime.keys import Keys
from orchestrator.settings import Settings
from worker.entry import use_leases, use_settings
from worker.jobs import SERIALIZER, TaskJob
from worker.leases import WorkerLeases, claimed_key
from worker.process import claiming_queue_class, task_queue_name, task_worker

PREFIX = "t"
TASK = {"execution": "e1", "token": "e1:1", "function": "ValidateDragon", "payload": {}}


def test_a_job_whose_start_times_out_is_still_leased_and_leaves_the_claimed_list(
    redis_client: redis.Redis, redis_url: str
) -> None:
    # A worker whose replies take longer than this counts its connection as lost.
    connection = redis.Redis.from_url(redis_url, socket_timeout=0.2)
    leases = WorkerLeases(connection, PREFIX, "w1", lease_seconds=30)
    redis_client.rpush(claimed_key(PREFIX, "w1"), "job-1")
    # Redis holds every write for half a second: the first START's reply does not come in time.
    redis_client.client_pause(500, all=False)

    members = leases.take("job-1", [TASK])

    assert redis_client.llen(claimed_key(PREFIX, "w1")) == 0
    leased = [json.loads(member) for member in redis_client.zrange(f"{PREFIX}:timers", 0, -1)]
    assert [(event["type"], event["token"]) for event in leased] == [("TaskFailed", "e1:1")]
    assert [json.loads(member)["token"] for member in members] == ["e1:1"]
    connection.close()


class LostWhileRead(TaskJob):
    """A job class whose read fails as a connection dropped right after the dequeue would."""

    @classmethod
    def fetch(cls, *args: Any, **kwargs: Any) -> TaskJob:
        raise redis.ConnectionError("Connection closed by server.")


def test_a_job_dequeued_over_a_connection_lost_before_it_was_read_is_not_left_claimed(
    redis_client: redis.Redis, settings: Settings
) -> None:
    queue_class = claiming_queue_class(settings, "w2")
    queue = queue_class(task_queue_name(settings), connection=redis_client, serializer=SERIALIZER)
    job = queue.enqueue("worker.entry.run_tasks", [TASK], "t:events")

    with pytest.raises(redis.ConnectionError):
        queue_class.dequeue_any([queue], None, connection=redis_client, job_class=LostWhileRead)
    assert redis_client.lrange(claimed_key(PREFIX, "w2"), 0, -1) == [job.id.encode()]

    dequeued = queue_class.dequeue_any([queue], None, connection=redis_client, job_class=TaskJob)

    # The job went back to the queue and came out again: claimed once, run once.
    assert dequeued is not None and dequeued[0].id == job.id
    assert redis_client.lrange(claimed_key(PREFIX, "w2"), 0, -1) == [job.id.encode()]
    assert redis_client.llen(queue.key) == 0


def test_a_job_whose_preparation_lost_redis_goes_back_to_the_queue_and_runs(
    redis_client: redis.Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RQ fails a job whose own bookkeeping lost the connection before the function ran; its tasks
    must not be left in the worker's claimed list, where nothing would ever run or fail them."""
    use_settings(settings)
    use_leases(WorkerLeases(redis_client, PREFIX, "w3", lease_seconds=30))
    queue_class = claiming_queue_class(settings, "w3")
    queue = queue_class(task_queue_name(settings), connection=redis_client, serializer=SERIALIZER)
    queue.enqueue("worker.entry.run_tasks", [TASK], Keys(PREFIX).events)
    worker = task_worker(redis_client, settings, "w3")
    prepare = worker.prepare_job_execution
    calls = []

    def lose_redis_once(*args: Any, **kwargs: Any) -> None:
        # No real part can drop the connection exactly inside RQ's preparation: injected here.
        calls.append(1)
        if len(calls) == 1:
            raise redis.ConnectionError("Connection closed by server.")
        prepare(*args, **kwargs)

    monkeypatch.setattr(worker, "prepare_job_execution", lose_redis_once)
    try:
        worker.work(burst=True, logging_level="WARNING")
    finally:
        use_leases(None)

    # The job went back and ran: its task reported, and nothing is left claimed.
    assert len(calls) == 2
    assert redis_client.llen(claimed_key(PREFIX, "w3")) == 0
    reports = [json.loads(fields[b"event"]) for _, fields in redis_client.xrange(Keys(PREFIX).events)]
    assert [report["token"] for report in reports if report["type"] in ("TaskSucceeded", "TaskFailed")] == [
        "e1:1"
    ]
