"""The task job the orchestrator writes is the job RQ itself would write for the same call."""

from __future__ import annotations

import json
from typing import Any

import redis
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from orchestrator.protocol.jobs import (
    FAILED_JOB_TTL_SECONDS,
    JOB_TIMEOUT_SECONDS,
    TASK_ENTRY_POINT,
    TIMEOUT_GRACE_SECONDS,
    rq_job_fields,
    timed_by_own_timeouts,
)
from orchestrator.protocol.keys import SharedKeys

KEYS = SharedKeys("jobs")
TASKS: list[Any] = [
    {"execution": "e-1", "token": "t-1", "function": "ValidateDragon", "payload": {"name": "Smok \u2603"}},
    {"execution": "e-2", "token": "t-2", "function": "AddDragon", "payload": [1, 2.5, None, True]},
]
VARYING = {"created_at", "enqueued_at"}  # times: a job created a moment later differs in them


def rqs_own_fields(tasks: list[Any]) -> dict[str, Any]:
    job = Job.create(
        func=TASK_ENTRY_POINT,
        args=[tasks, KEYS.events],
        connection=redis.Redis(),
        serializer=JSONSerializer,
        result_ttl=0,
        failure_ttl=FAILED_JOB_TTL_SECONDS,
        timeout=JOB_TIMEOUT_SECONDS,
        description=f"{TASK_ENTRY_POINT}({len(tasks)} task(s))",
        status=JobStatus.QUEUED,
    )
    job.origin = KEYS.task_queue_name
    job.enqueued_at = job.created_at
    fields = job.to_dict()
    fields["data"] = job.data.decode()
    return fields


def test_the_fields_are_rqs_own_for_the_same_job_but_for_its_times() -> None:
    _, ours = rq_job_fields(TASKS, KEYS)
    theirs = rqs_own_fields(TASKS)

    assert ours.keys() == theirs.keys()
    # The data is the same JSON document; ours is written compact, with non-ASCII as UTF-8.
    assert json.loads(ours["data"]) == json.loads(theirs["data"])
    assert {k: v for k, v in ours.items() if k not in VARYING | {"data"}} == {
        k: v for k, v in theirs.items() if k not in VARYING | {"data"}
    }
    assert ours["created_at"] == ours["enqueued_at"]


def test_rq_reads_the_job_back_as_the_call_it_was_made_for() -> None:
    job_id, fields = rq_job_fields(TASKS, KEYS)
    job = Job(job_id, connection=redis.Redis(), serializer=JSONSerializer)

    job.restore({name.encode(): str(value).encode() for name, value in fields.items()})

    assert (job.func_name, job.args, job.kwargs) == (TASK_ENTRY_POINT, [TASKS, KEYS.events], {})
    assert (job.origin, job.timeout, job.result_ttl, job.get_status(refresh=False)) == (
        KEYS.task_queue_name,
        JOB_TIMEOUT_SECONDS,
        0,
        JobStatus.QUEUED,
    )
    assert job.created_at is not None and job.enqueued_at == job.created_at


def test_every_job_gets_its_own_id_and_its_own_tasks() -> None:
    first_id, first = rq_job_fields(TASKS[:1], KEYS)
    second_id, second = rq_job_fields(TASKS[1:], KEYS)

    assert first_id != second_id
    assert first["data"] != second["data"]
    assert first["description"].endswith("(1 task(s))")


def timed(*seconds: float | None) -> list[Any]:
    """Tasks with these TimeoutSeconds (None: none)."""
    tasks = [{**TASKS[0], "token": f"t-{i}"} for i in range(len(seconds))]
    for task, limit in zip(tasks, seconds, strict=True):
        if limit is not None:
            task["timeout_seconds"] = limit
    return tasks


def test_a_job_whose_every_task_has_a_timeout_may_run_their_longest_and_a_grace() -> None:
    for tasks, expected in [
        (timed(1.0), 1 + TIMEOUT_GRACE_SECONDS),
        (timed(2.5, 10.0, 0.2), 10 + TIMEOUT_GRACE_SECONDS),
        (timed(2.5), 3 + TIMEOUT_GRACE_SECONDS),  # whole seconds, as RQ's alarm takes them
        (timed(30.0, None), JOB_TIMEOUT_SECONDS),  # one task may run as long as Lambda lets it
        (timed(None), JOB_TIMEOUT_SECONDS),
        (timed(99_999_999.0), JOB_TIMEOUT_SECONDS),  # never longer than Lambda's longest
    ]:
        _, fields = rq_job_fields(tasks, KEYS)
        job = Job("j", connection=redis.Redis(), serializer=JSONSerializer)
        job.restore({name.encode(): str(value).encode() for name, value in fields.items()})
        assert job.timeout == expected, tasks
        assert timed_by_own_timeouts(tasks, job.timeout) == (expected < JOB_TIMEOUT_SECONDS)


def test_a_job_timed_otherwise_than_its_tasks_say_is_not_taken_for_one_timed_by_them() -> None:
    tasks = timed(1.0)

    assert timed_by_own_timeouts(tasks, 1 + TIMEOUT_GRACE_SECONDS)
    assert not timed_by_own_timeouts(tasks, 100)  # written by hand, or by another version
    assert not timed_by_own_timeouts(timed(None), JOB_TIMEOUT_SECONDS)
