"""Task leases on a real Redis: taken even when the connection is lost as the job starts, set
and renewed by Redis's clock, and fired by the orchestrators as Lambda.Unknown.

Until START runs, a dequeued job sits only in its worker's claimed list, and nobody gives
back the claimed jobs of a worker that is alive: a START lost to a dropped connection would
leave the job's tasks waiting forever, with no lease to fail them.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis

from orchestrator.metrics import scrape
from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.loop import Orchestrator
from orchestrator.settings import Settings
from tests.runtime_fixtures import dragon, one_task_machine, queued_tasks
from worker.claiming import claiming_queue_class, task_queue_name
from worker.jobs import SERIALIZER, TaskJob
from worker.leases import WorkerLeases
from worker.process import task_worker

PREFIX = "t"
TASK = {"execution": "e1", "token": "e1:1", "function": "ValidateDragon", "payload": {}}


def test_a_job_whose_start_times_out_is_still_leased_and_leaves_the_claimed_list(
    redis_client: redis.Redis, redis_url: str
) -> None:
    # A worker whose replies take longer than this counts its connection as lost.
    connection = redis.Redis.from_url(redis_url, socket_timeout=0.2)
    leases = WorkerLeases(connection, PREFIX, "w1", lease_seconds=30)
    redis_client.rpush(Keys(PREFIX).claimed("w1"), "job-1")
    # Redis holds every write for half a second: the first START's reply does not come in time.
    redis_client.client_pause(500, all=False)

    members = leases.take("job-1", [TASK])

    assert redis_client.llen(Keys(PREFIX).claimed("w1")) == 0
    leased = [json.loads(member) for member in redis_client.zrange(Keys(PREFIX).leases, 0, -1)]
    assert [(lease["worker"], lease["token"]) for lease in leased] == [("w1", "e1:1")]
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
    assert redis_client.lrange(Keys(PREFIX).claimed("w2"), 0, -1) == [job.id.encode()]

    dequeued = queue_class.dequeue_any([queue], None, connection=redis_client, job_class=TaskJob)

    # The job went back to the queue and came out again: claimed once, run once.
    assert dequeued is not None and dequeued[0].id == job.id
    assert redis_client.lrange(Keys(PREFIX).claimed("w2"), 0, -1) == [job.id.encode()]
    assert redis_client.llen(queue.key) == 0


def test_a_job_whose_preparation_lost_redis_goes_back_to_the_queue_and_runs(
    redis_client: redis.Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RQ fails a job whose own bookkeeping lost the connection before the function ran; its tasks
    must not be left in the worker's claimed list, where nothing would ever run or fail them."""
    queue_class = claiming_queue_class(settings, "w3")
    queue = queue_class(task_queue_name(settings), connection=redis_client, serializer=SERIALIZER)
    queue.enqueue("worker.entry.run_tasks", [TASK], Keys(PREFIX).events)
    leases = WorkerLeases(redis_client, PREFIX, "w3", lease_seconds=30)
    worker = task_worker(redis_client, settings, "w3", leases=leases)
    prepare = worker.prepare_job_execution
    calls = []

    def lose_redis_once(*args: Any, **kwargs: Any) -> None:
        # No real part can drop the connection exactly inside RQ's preparation: injected here.
        calls.append(1)
        if len(calls) == 1:
            raise redis.ConnectionError("Connection closed by server.")
        prepare(*args, **kwargs)

    monkeypatch.setattr(worker, "prepare_job_execution", lose_redis_once)
    worker.work(burst=True, logging_level="WARNING")

    # The job went back and ran: its task reported, and nothing is left claimed.
    assert len(calls) == 2
    assert redis_client.llen(Keys(PREFIX).claimed("w3")) == 0
    reports = [json.loads(fields[b"event"]) for _, fields in redis_client.xrange(Keys(PREFIX).events)]
    assert [report["token"] for report in reports if report["type"] in ("TaskSucceeded", "TaskFailed")] == [
        "e1:1"
    ]


def redis_time(client: redis.Redis) -> float:
    seconds, microseconds = client.time()
    return seconds + microseconds / 1_000_000


def in_flight(redis_client: redis.Redis, settings: Settings, name: str) -> tuple[Client, dict[str, Any]]:
    """A client, and the one task of a fresh execution ``name`` (its job queued, no worker runs)."""
    client = Client(redis_client, settings)
    client.register_machine("One", one_task_machine())
    client.start_execution("One", dragon(name), name=name)
    [task] = [t for t in queued_tasks(redis_client, settings) if t["execution"] == name]
    return client, task


def run_until_finished(redis_client: redis.Redis, settings: Settings, client: Client, name: str) -> dict:
    orchestrator = Orchestrator(redis_client, settings, "o1")
    deadline = time.monotonic() + 60
    while (described := client.describe(name)) is not None and described["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{name} still running"
        orchestrator.run_once(block_seconds=0.05)
    assert described is not None
    return described


def test_a_lease_runs_out_lease_seconds_after_redis_s_time_and_a_renewal_pushes_it_from_there(
    redis_client: redis.Redis, settings: Settings
) -> None:
    # A worker process whose own clock is a day ahead: it must not matter.
    leases = WorkerLeases(
        redis_client, PREFIX, "w1", lease_seconds=30, clock=lambda: time.monotonic() + 86_400
    )
    before = redis_time(redis_client)
    [member] = leases.take("job-1", [TASK])
    after = redis_time(redis_client)
    [(_, due)] = redis_client.zrange(Keys(PREFIX).leases, 0, -1, withscores=True)
    assert before + 30 <= due <= after + 30

    before = redis_time(redis_client)
    leases.beat()
    [(renewed, due)] = redis_client.zrange(Keys(PREFIX).leases, 0, -1, withscores=True)
    assert renewed.decode() == member
    assert due >= before + 30

    # A lease its report removed is not set again by a renewal that raced with the report.
    redis_client.zrem(Keys(PREFIX).leases, member)
    leases.beat()
    assert redis_client.zcard(Keys(PREFIX).leases) == 0


def test_an_expired_lease_fails_its_task_as_lambda_unknown_worded_as_lambda_words_it(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client, task = in_flight(redis_client, settings, "silent")
    # Given a worker that took the task on a lease it never renews, and Redis's clock past its end,
    [member] = WorkerLeases(redis_client, settings.prefix, "w-gone", lease_seconds=0.001).take("job", [task])
    record = json.loads(member)

    # when an orchestrator runs,
    described = run_until_finished(redis_client, settings, client, "silent")

    # then the task failed as Lambda.Unknown, with Lambda's error document naming the worker.
    [failed] = [e for e in client.history("silent") if e["type"] == "LambdaFunctionFailed"]
    expected_cause = {
        "errorMessage": "The worker running the task stopped responding: worker w-gone renewed no lease "
        "for 0.00 seconds",
        "errorType": "Lambda.Unknown",
        "requestId": record["request_id"],
        "stackTrace": [],
    }
    assert failed["error"] == "Lambda.Unknown"
    assert failed["cause"] == json.dumps(expected_cause)
    assert described["status"] == "FAILED"
    assert redis_client.zcard(Keys(settings.prefix).leases) == 0


def test_an_expired_lease_counts_as_a_failure_of_its_function_in_the_metrics(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client, task = in_flight(redis_client, settings, "counted")
    # Given a worker that died holding the task, and no failure of that function counted yet,
    before = scrape.read(redis_client, settings).counts
    assert before.get(("task_failures", (task["function"], "Lambda.Unknown")), 0) == 0
    WorkerLeases(redis_client, settings.prefix, "w-gone", lease_seconds=0.001).take("job", [task])

    # when an orchestrator fires its lease,
    run_until_finished(redis_client, settings, client, "counted")

    # then /metrics counts one Lambda.Unknown failure of the function, as a worker's report would.
    after = scrape.read(redis_client, settings).counts
    assert after[("task_failures", (task["function"], "Lambda.Unknown"))] == 1


def test_a_lease_an_earlier_version_stored_in_the_timers_zset_still_fires(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client, task = in_flight(redis_client, settings, "stored-before")
    # Before leases had their own key, a worker put the TaskFailed event itself among the timers.
    cause = {
        "errorMessage": "The worker running the task stopped responding: worker old renewed no lease "
        "for 30.00 seconds",
        "errorType": "Lambda.Unknown",
        "requestId": "r-1",
        "stackTrace": [],
    }
    event = {
        "type": "TaskFailed",
        "execution": task["execution"],
        "token": task["token"],
        "error": "Lambda.Unknown",
        "cause": json.dumps(cause),
    }
    redis_client.zadd(Keys(settings.prefix).timers, {json.dumps(event, separators=(",", ":")): 1.0})

    described = run_until_finished(redis_client, settings, client, "stored-before")

    [failed] = [e for e in client.history("stored-before") if e["type"] == "LambdaFunctionFailed"]
    assert (failed["error"], json.loads(failed["cause"])) == ("Lambda.Unknown", cause)
    assert described["status"] == "FAILED"
    assert redis_client.zcard(Keys(settings.prefix).timers) == 0


def test_a_lease_member_that_is_no_lease_record_is_set_aside_and_the_leases_behind_it_fire(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client, task = in_flight(redis_client, settings, "behind-junk")
    keys = Keys(settings.prefix)
    redis_client.zadd(keys.leases, {"not json": 0.0, '{"execution": 1}': 0.5})
    WorkerLeases(redis_client, settings.prefix, "w1", lease_seconds=0.001).take("job", [task])

    described = run_until_finished(redis_client, settings, client, "behind-junk")

    assert described["status"] == "FAILED"
    assert redis_client.zcard(keys.leases) == 0
    set_aside = [fields[b"fields"].decode() for _, fields in redis_client.xrange(keys.malformed)]
    assert any("not json" in entry for entry in set_aside), set_aside


def give_back_as_a_reaper_does(redis_client: redis.Redis, worker: str) -> None:
    """Another worker's reaper gives back ``worker``'s claimed jobs: its liveness key is gone."""
    redis_client.sadd(Keys(PREFIX).workers, worker)
    WorkerLeases(redis_client, PREFIX, "reaper", lease_seconds=30).reap()


def test_a_job_given_back_while_its_worker_looked_dead_runs_there_and_leaves_the_queue_again(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    keys = Keys(PREFIX)
    redis_client.rpush(keys.task_queue, "job-0")
    redis_client.rpush(keys.claimed("w1"), "job-1")
    give_back_as_a_reaper_does(redis_client, "w1")
    assert redis_client.lrange(keys.task_queue, 0, -1) == [b"job-1", b"job-0"]

    # The worker was only slow (frozen, or Redis took no writes for a lease): it starts the job.
    WorkerLeases(redis_client, PREFIX, "w1", lease_seconds=30).take("job-1", [TASK])

    # It runs there once: no other worker dequeues it, and none finds it once its end deleted it.
    assert redis_client.lrange(keys.task_queue, 0, -1) == [b"job-0"]
    leased = [json.loads(member) for member in redis_client.zrange(keys.leases, 0, -1)]
    assert [(lease["worker"], lease["token"]) for lease in leased] == [("w1", "e1:1")]
    assert "job-1 was given back while this worker looked dead; it runs here, off the queue" in caplog.text


def test_a_job_given_back_and_taken_by_another_worker_stays_with_it(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    keys = Keys(PREFIX)
    redis_client.rpush(keys.claimed("w1"), "job-1")
    give_back_as_a_reaper_does(redis_client, "w1")
    redis_client.lmove(keys.task_queue, keys.claimed("w2"))

    WorkerLeases(redis_client, PREFIX, "w1", lease_seconds=30).take("job-1", [TASK])

    assert redis_client.lrange(keys.claimed("w2"), 0, -1) == [b"job-1"]
    assert "job-1 was given back while this worker looked dead, and another worker took it" in caplog.text


def test_a_worker_that_could_not_renew_gives_every_worker_a_lease_to_renew_before_it_reaps(
    redis_client: redis.Redis,
) -> None:
    keys = Keys(PREFIX)
    now = [1000.0]
    leases = WorkerLeases(redis_client, PREFIX, "w1", lease_seconds=30, clock=lambda: now[0])
    # w2 claimed a job and, like w1, could not renew its liveness key while Redis refused writes.
    redis_client.sadd(keys.workers, "w2")
    redis_client.rpush(keys.claimed("w2"), "job-2")
    redis_client.config_set("maxmemory", 1)  # full: every write refused with OOM
    try:
        leases.renew()
    finally:
        redis_client.config_set("maxmemory", 0)

    leases.renew()  # Redis takes writes again: w1 is alive again, and w2 gets its chance too
    now[0] += 29
    leases.renew()
    assert redis_client.lrange(keys.claimed("w2"), 0, -1) == [b"job-2"]

    now[0] += 1  # a whole lease, and w2 renewed nothing: it is dead
    leases.renew()
    assert redis_client.lrange(keys.claimed("w2"), 0, -1) == []
    assert redis_client.lrange(keys.task_queue, 0, -1) == [b"job-2"]
