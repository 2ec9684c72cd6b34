"""The worker's quick ways through a task job decide exactly as RQ's own slower ones do.

A hash exactly as the orchestrators write it is decoded without RQ's reading (worker.jobs,
``decoded_quickly``); every other hash still goes through RQ's, so what is refused stays refused.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings

from tests.test_worker_poison_jobs import SOUND, changed_hashes
from worker.jobs import SERIALIZER, MalformedJob, TaskJob, decode_task_job, decoded_quickly

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


@pytest.mark.parametrize(
    "change",
    [
        {b"created_at": b"2026-12-06T18:22:33Z"},  # RQ's older format: RQ's reading takes it
        {b"created_at": b"2026-13-06T18:22:33.820304Z"},  # no such month: refused
        {b"status": b"started"},
        {b"data": b'["worker.entry.run_tasks", null, [[], "t:events"], {}, 1]'},
        {b"meta": b"{}"},
        {b"origin": b""},
    ],
    ids=[
        "older date format",
        "impossible date",
        "another status",
        "five-part data",
        "an extra field",
        "no origin",
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
