"""The worker's quick ways through a task job decide and write exactly as RQ's own slower ones do.

A hash exactly as the orchestrators write it is decoded without RQ's reading (worker.jobs,
``decoded_quickly``); every other hash still goes through RQ's, so what is refused stays refused.
RQ's bookkeeping of a job's start and success is written out directly once it agreed with what
RQ's methods recorded for the worker's first job (worker.bookkeeping.TaskJobBookkeeping); RQ's
tools must show those jobs as they show any. The worker's two script calls a job go on a
connection of their own (worker.direct_calls) and must answer and fail as redis-py's do.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from rq import Worker
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from orchestrator.protocol.jobs import rq_job_fields
from orchestrator.protocol.keys import SharedKeys
from orchestrator.protocol.metrics import metrics_key
from orchestrator.settings import Settings
from tests.test_worker_poison_jobs import SOUND, changed_hashes
from worker.bookkeeping import TaskJobBookkeeping, agree
from worker.direct_calls import DirectScript, direct_script
from worker.entry import carry_out
from worker.jobs import SERIALIZER, MalformedJob, TaskJob, decode_task_job, decoded_quickly
from worker.leases import WorkerLeases
from worker.process import TaskWorker, task_worker
from worker.registry import FunctionRegistry, default_registry

CONNECTION = redis.Redis()  # decoding does no I/O
JOB_ID = "0b0e1c5e-9d0e-4c3a-8f3e-2b1d4c5e6f70"


def read_by_rq(raw: dict[bytes, bytes]) -> TaskJob | MalformedJob:
    job = TaskJob(JOB_ID, connection=CONNECTION, serializer=SERIALIZER)
    try:
        job.restore(raw)
    except MalformedJob as refused:
        return refused
    return job


def state(job: TaskJob, raw: dict[bytes, bytes] = SOUND) -> dict[str, Any]:
    """The job's attributes; without created_at when the hash has none (RQ's reading then takes now)."""
    attributes = dict(vars(job))
    if not raw.get(b"created_at"):
        del attributes["created_at"]
    return attributes


def test_the_orchestrators_job_is_decoded_quickly_into_what_rqs_reading_makes_of_it() -> None:
    quick = decoded_quickly(JOB_ID, SOUND, CONNECTION)

    rq_read = read_by_rq(SOUND)
    assert quick is not None and isinstance(rq_read, TaskJob)
    assert state(quick) == state(rq_read)
    assert quick.webhooks is not rq_read.webhooks and quick.meta is not rq_read.meta  # none shared


def test_a_job_timed_by_its_tasks_timeouts_is_decoded_quickly_with_that_timeout() -> None:
    task = {"execution": "e", "token": "e:1", "function": "F", "timeout_seconds": 2}
    _, fields = rq_job_fields([task], SharedKeys("t"))
    raw = {name.encode(): str(value).encode() for name, value in fields.items()}

    quick = decoded_quickly(JOB_ID, raw, CONNECTION)

    rq_read = read_by_rq(raw)
    assert quick is not None and isinstance(rq_read, TaskJob)
    assert quick.timeout == rq_read.timeout == 7
    assert state(quick, raw) == state(rq_read, raw)


@pytest.mark.parametrize(
    "change",
    [
        {b"created_at": b"2026-12-06T18:22:33Z"},  # RQ's older format: RQ's reading takes it
        {b"created_at": b"2026-13-06T18:22:33.820304Z"},  # no such month: refused
        {b"status": b"started"},
        {b"data": b'["worker.entry.run_tasks", null, [[], "t:events"], {}, 1]'},
        {b"meta": b"{}"},
        {b"origin": b""},
        {b"timeout": b"1h"},  # RQ reads it as 3600
        {b"timeout": b"0"},
        {b"timeout": b"-1"},  # RQ's "none"
    ],
    ids=[
        "older date format",
        "impossible date",
        "another status",
        "five-part data",
        "an extra field",
        "no origin",
        "timeout in RQ's units",
        "zero timeout",
        "no timeout",
    ],
)
def test_a_hash_not_quite_as_the_orchestrators_write_it_is_left_to_rqs_reading(
    change: dict[bytes, bytes],
) -> None:
    raw = {**SOUND, **change}

    assert decoded_quickly(JOB_ID, raw, CONNECTION) is None
    expected = read_by_rq(raw)
    if isinstance(expected, MalformedJob):
        with pytest.raises(MalformedJob) as refused:
            decode_task_job(JOB_ID, raw, CONNECTION)
        assert refused.value.reason == expected.reason
    else:
        assert state(decode_task_job(JOB_ID, raw, CONNECTION)) == state(expected)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=changed_hashes)
def test_any_changed_hash_is_decoded_or_refused_as_rqs_reading_decides(raw: dict[bytes, bytes]) -> None:
    expected = read_by_rq(raw)

    quick = decoded_quickly(JOB_ID, raw, CONNECTION)
    if quick is not None:
        assert isinstance(expected, TaskJob) and state(quick, raw) == state(expected, raw)
    try:
        decoded = decode_task_job(JOB_ID, raw, CONNECTION)
    except MalformedJob as refused:
        assert isinstance(expected, MalformedJob) and refused.reason == expected.reason
    else:
        assert isinstance(expected, TaskJob) and state(decoded, raw) == state(expected, raw)


# -- RQ's bookkeeping written out directly (worker.bookkeeping.TaskJobBookkeeping) -----------------

KEYS = SharedKeys("t")
SEEN_BY_RQ: list[dict[str, Any]] = []


def see_what_rq_sees(event: Any, context: Any) -> dict[str, Any]:
    """A function that notes what RQ's own tools show of the job running it, as it runs.

    The job's start is sent before the function begins and lands while it runs (the worker
    does not wait for it), so the function first waits for the worker to show a current job.
    """
    client = context.redis
    [worker] = Worker.all(connection=client)
    deadline = time.monotonic() + 5
    while (job_id := worker.get_current_job_id()) is None and time.monotonic() < deadline:
        time.sleep(0.001)
    job = Job.fetch(job_id, connection=client, serializer=SERIALIZER)
    SEEN_BY_RQ.append(
        {
            "state": worker.get_state(),
            "status": job.get_status(),
            "persisted": client.ttl(job.key) == -1,
            "started": StartedJobRegistry(KEYS.task_queue_name, connection=client).get_job_ids() == [job_id],
            "executions": len(client.keys(f"rq:execution:{job_id}:*")),
            "worker_name": job.worker_name == worker.name and job.started_at is not None,
        }
    )
    return event


AS_RQ_SHOWS_A_RUNNING_JOB = {
    "state": "busy",
    "status": JobStatus.STARTED,
    "persisted": True,
    "started": True,
    "executions": 1,
    "worker_name": True,
}


@pytest.fixture
def looking_function() -> Iterator[None]:
    SEEN_BY_RQ.clear()
    default_registry.register("SeeWhatRQSees", see_what_rq_sees)
    yield
    default_registry.unregister("SeeWhatRQSees")


def run_jobs_in_burst(client: redis.Redis, settings: Settings, jobs: int) -> Worker:
    """``jobs`` one-task jobs as the orchestrators write them, run by one TaskWorker with leases."""
    for n in range(jobs):
        task = {"execution": f"exec-{n}", "token": f"token-{n}", "function": "SeeWhatRQSees", "payload": n}
        job_id, fields = rq_job_fields([task], KEYS)  # type: ignore[list-item]
        client.hset(KEYS.rq_job(job_id), mapping={name: str(value) for name, value in fields.items()})
        client.rpush(KEYS.task_queue, job_id)
    leases = WorkerLeases(client, settings.prefix, "w1", settings.lease_seconds)
    leases.start()
    try:
        worker = task_worker(client, settings, "w1", None, leases)
        worker.work(burst=True, logging_level="WARNING")
    finally:
        leases.stop()
    return worker


def assert_rq_shows_every_job_ended(client: redis.Redis, jobs: int) -> None:
    worker = Worker.find_by_key("rq:worker:w1", connection=client)  # left for a minute after it quit
    assert worker is not None and worker.successful_job_count == jobs and worker.failed_job_count == 0
    assert worker.total_working_time > 0
    assert worker.get_current_job_id() is None
    assert StartedJobRegistry(KEYS.task_queue_name, connection=client).get_job_ids() == []
    assert client.keys("rq:execution:*") == [] and client.keys("rq:executions:*") == []
    assert client.keys("rq:job:*") == []
    assert [json.loads(fields[b"event"])["output"] for _, fields in client.xrange(KEYS.events)] == list(
        range(jobs)
    )


def test_rq_sees_jobs_whose_bookkeeping_was_written_directly_as_it_sees_its_own_workers_jobs(
    redis_client: redis.Redis, settings: Settings, looking_function: None
) -> None:
    """The first job's bookkeeping is recorded by RQ's methods, the next ones' written directly."""
    worker = run_jobs_in_burst(redis_client, settings, 3)

    assert isinstance(worker, TaskWorker) and worker._start_agreed and worker._success_agreed
    assert SEEN_BY_RQ == [AS_RQ_SHOWS_A_RUNNING_JOB] * 3
    assert_rq_shows_every_job_ended(redis_client, 3)


def test_a_worker_whose_direct_writing_disagrees_with_rqs_methods_keeps_using_rqs_methods(
    redis_client: redis.Redis,
    settings: Settings,
    looking_function: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As with an RQ that records a job's start otherwise: a command more, say."""
    start = TaskJobBookkeeping.start

    def another_rq(self: TaskJobBookkeeping, job: Job, execution: Execution, ttl: int) -> list[Any]:
        [words] = start(self, job, execution, ttl)
        return [json.dumps([*json.loads(str(words)), ["DEL", "rq:somewhere"]])]

    monkeypatch.setattr(TaskJobBookkeeping, "start", another_rq)

    worker = run_jobs_in_burst(redis_client, settings, 3)

    assert isinstance(worker, TaskWorker) and worker._start_agreed is False and worker._success_agreed
    assert "records a job's start otherwise" in caplog.text
    assert SEEN_BY_RQ == [AS_RQ_SHOWS_A_RUNNING_JOB] * 3
    assert_rq_shows_every_job_ended(redis_client, 3)


def test_recordings_agree_only_word_for_word_but_for_readings_of_the_clock_a_moment_apart() -> None:
    def one(*commands: list[str]) -> list[Any]:
        return [json.dumps(list(commands))]

    rq = one(
        ["HSET", "rq:worker:w", "last_heartbeat", "2026-12-06T18:22:33.820294Z"],
        ["ZADD", "k", "1796582373", "e"],
    )
    moment_later = one(
        ["HSET", "rq:worker:w", "last_heartbeat", "2026-12-06T18:22:34.1Z"], ["ZADD", "k", "1796582374", "e"]
    )
    assert agree(moment_later, rq)
    assert agree(one(["HINCRBY", "k", "n", "1"]), one(["HINCRBY", "k", "n", "1"]))
    assert not agree(one(["HINCRBY", "k", "n", "2"]), one(["HINCRBY", "k", "n", "1"]))  # a count, not a clock
    assert not agree(one(["HSET", "k", "state", "idle"]), one(["HSET", "k", "state", "busy"]))
    assert not agree(
        one(["ZADD", "k", "1796582373", "e"]), one(["ZADD", "k", "1796592373", "e"])
    )  # hours apart
    assert not agree(one(["DEL", "k"]), one(["DEL", "k"], ["DEL", "j"]))
    assert not agree(one(["DEL", "k"]), one(["DEL", "k", "j"]))
    assert not agree(one(["DEL", "k"]), one(["UNLINK", "k"]))


# -- script calls on a connection of their own (worker.direct_calls.DirectScript) -----------------


def test_a_direct_script_call_answers_as_redis_pys_and_loads_a_script_redis_lost(
    redis_client: redis.Redis,
) -> None:
    give_back = DirectScript(redis_client, "give_back_jobs")
    redis_client.rpush("t:claimed:w", "a", "b")

    assert give_back(["t:claimed:w", "t:queue"], []) == 2
    assert redis_client.lrange("t:queue", 0, -1) == [b"a", b"b"]  # in the order they were claimed

    redis_client.script_flush()
    redis_client.rpush("t:claimed:w", "c")
    assert give_back(["t:claimed:w", "t:queue"], []) == 1
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        redis_client.set("t:string", "x")
        give_back(["t:string", "t:queue"], [])
    assert give_back(["t:claimed:w", "t:queue"], []) == 0  # the connection still in step


def test_a_direct_script_call_on_a_lost_connection_raises_as_redis_py_does_and_the_next_one_reconnects(
    redis_client: redis.Redis,
) -> None:
    give_back = DirectScript(redis_client, "give_back_jobs")
    assert give_back(["t:claimed:w", "t:queue"], []) == 0
    redis_client.client_kill_filter(skipme=True, _type="normal")  # every connection but this one

    with pytest.raises(redis.ConnectionError):
        give_back(["t:claimed:w", "t:queue"], [])
    redis_client.rpush("t:claimed:w", "a")
    assert give_back(["t:claimed:w", "t:queue"], []) == 1


def test_a_direct_script_call_while_its_connection_is_busy_goes_through_redis_py(
    redis_client: redis.Redis,
) -> None:
    give_back = DirectScript(redis_client, "give_back_jobs")
    redis_client.rpush("t:claimed:w", "a")

    with give_back._busy:  # another thread's call in flight
        assert give_back(["t:claimed:w", "t:queue"], []) == 1
    assert not give_back._own.held_here()  # no connection of its own was taken


def leading_words(command: Any) -> list[bytes]:
    """The first words of a packed command (RESP), as a connection sends it: enough to tell calls apart."""
    data = command.encode() if isinstance(command, str) else command
    if isinstance(data, list):
        data = b"".join(bytes(chunk) for chunk in data)
    return bytes(data[:512]).split(b"\r\n")[2::2][:6]


class LosesOneReplyConnection(redis.Connection):
    """A connection on which the first call that ``lost_on`` picks lands but its reply is lost.

    Each subclass counts its own loss in ``lost``.
    """

    lost = 0
    _picked = False

    @staticmethod
    def lost_on(words: list[bytes]) -> bool:
        raise NotImplementedError

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        self._picked = self.lost_on(leading_words(command))
        super().send_packed_command(command, check_health)

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        reply = super().read_response(*args, **kwargs)
        if self._picked and not type(self).lost:
            type(self).lost += 1
            self.disconnect()
            raise redis.ConnectionError("Connection closed by server.")
        return reply


class LosesAReportReplyConnection(LosesOneReplyConnection):
    """Loses the reply of the first report call (append_reports.lua: the events key first)."""

    @staticmethod
    def lost_on(words: list[bytes]) -> bool:
        return words[:1] == [b"EVALSHA"] and any(w.endswith(b":events") for w in words[3:5])


def test_a_report_call_on_its_own_connection_whose_reply_is_lost_is_sent_again_and_counted_once(
    redis_client: redis.Redis, redis_url: str
) -> None:
    pool = redis.ConnectionPool.from_url(redis_url, connection_class=LosesAReportReplyConnection)
    connection = redis.Redis(connection_pool=pool)
    registry = FunctionRegistry()
    registry.register("Fails", lambda event, context: 1 / 0)
    task = {"execution": "e1", "token": "e1:1", "function": "Fails", "payload": {}, "attempt": 1}
    leases = WorkerLeases(connection, "t", "w1", lease_seconds=30)
    assert isinstance(direct_script(connection, "append_reports"), DirectScript)

    reports = carry_out(
        [task], KEYS.events, connection=connection, prefix="t", registry=registry, leases=leases
    )

    assert [report["type"] for report in reports] == ["TaskFailed"]
    assert LosesAReportReplyConnection.lost == 1
    assert redis_client.xlen(KEYS.events) == 2  # both calls applied: the orchestrators take a token once
    assert redis_client.zcard(KEYS.leases) == 0
    failures = {
        name: by for name, by in redis_client.hgetall(metrics_key("t")).items() if b"failures" in name
    }
    assert list(failures.values()) == [b"1"]  # counted once
    connection.close()
