"""A job claimed with its hash, and started while its function runs.

A worker's dequeue pipelines peek_claimed.lua behind its BLMOVE, so it wakes with the job's
hash; a job exactly as the orchestrators write it is then started (START: its leases and RQ's
bookkeeping) without waiting, and START's reply is read before the reports go out. These
tests hold that to what a user checks: each task runs once and reports once, RQ's records
end as RQ's own worker leaves them, and nothing stays claimed or leased, also when START's
reply is lost, when START never left, and when Redis lost the scripts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from rq import Worker
from rq.registry import StartedJobRegistry

from orchestrator.protocol.jobs import rq_job_fields
from orchestrator.protocol.keys import SharedKeys
from orchestrator.protocol.scripts import lua_source
from orchestrator.settings import Settings
from tests.test_worker_fast_path import LosesOneReplyConnection
from worker.direct_calls import DirectScript
from worker.leases import WorkerLeases
from worker.process import TaskWorker, task_worker
from worker.registry import default_registry

KEYS = SharedKeys("t")
RUNS: list[Any] = []


def counted(event: Any, context: Any) -> Any:
    RUNS.append(event)
    return event


@pytest.fixture
def counting_function() -> Iterator[None]:
    RUNS.clear()
    default_registry.register("Counted", counted)
    yield
    default_registry.unregister("Counted")


def enqueue_as_the_orchestrators_do(client: redis.Redis, jobs: int) -> None:
    for n in range(jobs):
        task = {"execution": f"exec-{n}", "token": f"token-{n}", "function": "Counted", "payload": n}
        job_id, fields = rq_job_fields([task], KEYS)  # type: ignore[list-item]
        client.hset(KEYS.rq_job(job_id), mapping={name: str(value) for name, value in fields.items()})
        client.rpush(KEYS.task_queue, job_id)


def run_in_burst(client: redis.Redis, settings: Settings) -> None:
    leases = WorkerLeases(client, settings.prefix, "w1", settings.lease_seconds)
    leases.start()
    try:
        task_worker(client, settings, "w1", None, leases).work(burst=True, logging_level="WARNING")
    finally:
        leases.stop()


def assert_each_task_ran_and_reported_once_and_nothing_is_left(client: redis.Redis, jobs: int) -> None:
    assert list(range(jobs)) == RUNS
    outputs = [json.loads(fields[b"event"])["output"] for _, fields in client.xrange(KEYS.events)]
    assert outputs == list(range(jobs))
    assert client.zcard(KEYS.leases) == 0
    assert client.llen(KEYS.claimed("w1")) == 0 and client.llen(KEYS.task_queue) == 0
    worker = Worker.find_by_key("rq:worker:w1", connection=client)
    assert worker is not None and worker.successful_job_count == jobs and worker.failed_job_count == 0
    assert StartedJobRegistry(KEYS.task_queue_name, connection=client).get_job_ids() == []
    assert client.keys("rq:job:*") == [] and client.keys("rq:execution:*") == []


def test_jobs_claimed_with_their_hash_run_once_without_reading_it_again(
    redis_client: redis.Redis, settings: Settings, counting_function: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    enqueue_as_the_orchestrators_do(redis_client, 3)
    read_again = spy_on_read_claimed(monkeypatch)

    run_in_burst(redis_client, settings)

    assert_each_task_ran_and_reported_once_and_nothing_is_left(redis_client, 3)
    assert read_again == []  # every job came with its hash


def spy_on_read_claimed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the jobs whose hash the worker had to read after their dequeue."""
    read_again: list[str] = []
    read_claimed = TaskWorker.read_claimed

    def noted(worker: TaskWorker, claimed: Any) -> Any:
        read_again.append(claimed.id)
        return read_claimed(worker, claimed)

    monkeypatch.setattr(TaskWorker, "read_claimed", noted)
    return read_again


class LosesStartReplyConnection(LosesOneReplyConnection):
    """Loses the reply of the first START (start_tasks.lua: the worker's claimed list first)."""

    @staticmethod
    def lost_on(words: list[bytes]) -> bool:
        return words[:1] == [b"EVALSHA"] and words[3:4] == [KEYS.claimed("w1").encode()]


def test_a_start_that_never_left_is_sent_before_the_reports_and_the_task_runs_once(
    redis_client: redis.Redis, settings: Settings, counting_function: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    enqueue_as_the_orchestrators_do(redis_client, 2)
    send = DirectScript.send
    failed: list[str] = []

    def lose_the_first_start(script: DirectScript, keys: Any, args: Any) -> Any:
        if not failed and str(keys[0]).endswith(":claimed:w1"):
            failed.append(str(args[0]))
            raise redis.ConnectionError("Connection closed by server.")  # as a send on a dead socket does
        return send(script, keys, args)

    monkeypatch.setattr(DirectScript, "send", lose_the_first_start)

    run_in_burst(redis_client, settings)

    assert len(failed) == 1
    assert_each_task_ran_and_reported_once_and_nothing_is_left(redis_client, 2)


def test_a_start_redis_refuses_still_reports_what_the_function_returned_and_runs_it_once(
    redis_client: redis.Redis, settings: Settings, counting_function: None
) -> None:
    redis_client.set(KEYS.leases, "not a zset")  # written by someone else
    enqueue_as_the_orchestrators_do(redis_client, 1)

    run_in_burst(redis_client, settings)

    assert RUNS == [0]  # once: the job is not given back to run again
    outputs = [json.loads(fields[b"event"])["output"] for _, fields in redis_client.xrange(KEYS.events)]
    assert outputs == [0]
    assert redis_client.llen(KEYS.claimed("w1")) == 0 and redis_client.llen(KEYS.task_queue) == 0


def flushes_scripts(event: Any, context: Any) -> Any:
    RUNS.append(event)
    if event == 0:
        context.redis.script_flush()  # as a Redis restarted without persistence would have them
    return event


def test_jobs_after_redis_lost_its_scripts_still_run_once(
    redis_client: redis.Redis, settings: Settings, counting_function: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    default_registry.register("Counted", flushes_scripts)
    enqueue_as_the_orchestrators_do(redis_client, 3)
    read_again = spy_on_read_claimed(monkeypatch)

    run_in_burst(redis_client, settings)

    assert_each_task_ran_and_reported_once_and_nothing_is_left(redis_client, 3)
    assert len(read_again) == 1  # the job dequeued just after the flush; the next came with its hash
    [peek_loaded] = redis_client.script_exists(DirectScript(redis_client, "peek_claimed").script.sha)
    assert peek_loaded  # loaded again on the way


def test_peek_claimed_reads_the_job_at_the_tail_of_the_claimed_list_and_changes_nothing(
    redis_client: redis.Redis,
) -> None:
    peek = redis_client.register_script(lua_source("peek_claimed"))
    claimed = KEYS.claimed("w1")

    assert peek(keys=[claimed], args=["rq:job:"]) == []
    redis_client.rpush(claimed, "old", "new")
    redis_client.hset("rq:job:new", mapping={"status": "queued"})
    assert peek(keys=[claimed], args=["rq:job:"]) == [b"new", b"hash", [b"status", b"queued"]]
    redis_client.rpush(claimed, "gone")
    assert peek(keys=[claimed], args=["rq:job:"]) == [b"gone", b"none", []]
    redis_client.rpush(claimed, "text")
    redis_client.set("rq:job:text", "not a hash")
    assert peek(keys=[claimed], args=["rq:job:"]) == [b"text", b"string", []]
    assert redis_client.lrange(claimed, 0, -1) == [b"old", b"new", b"gone", b"text"]


def test_a_call_sent_without_waiting_keeps_its_reply_when_another_call_goes_first(
    redis_client: redis.Redis,
) -> None:
    give_back = DirectScript(redis_client, "give_back_jobs")
    redis_client.rpush("t:claimed:a", "1", "2")
    redis_client.rpush("t:claimed:b", "3")

    sent = give_back.send(["t:claimed:a", "t:queue:a"], [])
    assert give_back(["t:claimed:b", "t:queue:b"], []) == 1

    assert sent.reply() == 2
    assert redis_client.lrange("t:queue:a", 0, -1) == [b"1", b"2"]
    assert redis_client.lrange("t:queue:b", 0, -1) == [b"3"]


def test_a_call_sent_without_waiting_reports_a_lost_connection_and_a_lost_script(
    redis_client: redis.Redis,
) -> None:
    give_back = DirectScript(redis_client, "give_back_jobs")
    assert give_back(["t:claimed:a", "t:queue"], []) == 0
    redis_client.script_flush()
    redis_client.rpush("t:claimed:a", "1")
    assert give_back.send(["t:claimed:a", "t:queue"], []).reply() == 1  # loaded again

    redis_client.client_kill_filter(skipme=True, _type="normal")  # every connection but this one
    sent = give_back.send(["t:claimed:a", "t:queue"], [])  # onto a socket Redis has closed
    with pytest.raises(redis.ConnectionError):
        sent.reply()
    redis_client.rpush("t:claimed:a", "2")
    assert give_back(["t:claimed:a", "t:queue"], []) == 1


class LosesDequeueReplyConnection(LosesOneReplyConnection):
    """Loses the reply of the first dequeue that moved a job (LMOVE, as a burst worker moves one)."""

    @staticmethod
    def lost_on(words: list[bytes]) -> bool:
        return words[:1] == [b"LMOVE"]


@pytest.mark.parametrize(
    "losing",
    [LosesStartReplyConnection, LosesDequeueReplyConnection],
    ids=["START is sent again before the reports", "the dequeue gives the job back and claims it again"],
)
def test_a_reply_lost_on_the_way_costs_no_task_a_second_run(
    redis_client: redis.Redis,
    redis_url: str,
    settings: Settings,
    counting_function: None,
    losing: type[LosesOneReplyConnection],
) -> None:
    enqueue_as_the_orchestrators_do(redis_client, 2)
    losing.lost = 0
    pool = redis.ConnectionPool.from_url(redis_url, connection_class=losing)
    connection = redis.Redis(connection_pool=pool)

    run_in_burst(connection, settings)

    assert losing.lost == 1
    assert_each_task_ran_and_reported_once_and_nothing_is_left(redis_client, 2)
