"""A poison job kills no worker: what cannot run is moved aside with its reason, and its task failed.

Anyone who can write ``rq:*`` can put anything under a job id on the task queue. Real worker
processes meet every kind of it among real dragon executions and keep running them; the job
decoding is property-tested with arbitrary hashes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rq import Queue
from rq.serializers import JSONSerializer

from orchestrator.protocol.jobs import TASK_ENTRY_POINT, rq_job_fields
from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import Keys
from orchestrator.settings import Settings
from producer.produce import produce
from producer.records import validate_records
from tests.chaos import chaos_records, redstep_process, stop, wait_until
from worker.entry import is_addressable, run_tasks
from worker.jobs import MalformedJob, TaskJob, decode_task_job

KEYS = Keys("t")
WORKERS = 2


@pytest.fixture
def stack(subprocess_env: dict[str, str], redis_client: redis.Redis) -> Iterator[Client]:
    """An orchestrator running the dragon pipeline, and a client of it; workers come later."""
    orchestrator = redstep_process(subprocess_env, "orchestrator")
    yield Client(redis_client, Settings(redis_url=subprocess_env["REDIS_URL"], prefix="t"))
    stop(orchestrator)


def send_dragons(client: Client, start: int, count: int) -> list[str]:
    records = chaos_records(start + count, repeat_every=0)[start:]
    return produce(client.redis, client.settings, validate_records(records, "the test's records"))


def job_hash(
    tasks: list[dict[str, Any]], connection: redis.Redis, **changes: str
) -> tuple[str, dict[str, str]]:
    """A task job's id and hash as the orchestrator writes them, with ``changes`` made to fields."""
    job_id, fields = rq_job_fields(tasks, KEYS)  # type: ignore[arg-type]
    return job_id, {**{name: str(value) for name, value in fields.items()}, **changes}


def plant_poison(connection: redis.Redis, tag: str, tmp_path: Path) -> dict[str, str]:
    """Put one job id of every unrunnable kind at the head of the task queue; id -> expected reason.

    None of them may run: the forged task they name is of an execution that does not exist.
    """
    planted: dict[str, str] = {}
    forged_task = {"execution": f"nobody-{tag}", "token": f"nobody-{tag}:1", "function": "ValidateDragon"}

    connection.set(f"rq:job:string-{tag}", "a string where a job hash should be")
    planted[f"string-{tag}"] = "holds no hash"

    job_id, fields = job_hash([forged_task], connection, created_at="the day before yesterday")
    connection.hset(KEYS.rq_job(job_id), mapping=fields)
    planted[job_id] = "RQ cannot read its hash"

    job_id, fields = job_hash([forged_task], connection, data="}{ not json \xff")
    connection.hset(KEYS.rq_job(job_id), mapping=fields)
    planted[job_id] = "its data is not a JSON job"

    webhook = json.dumps([{"url": "http://127.0.0.1:9/", "job_status": "finished"}])
    job_id, fields = job_hash([forged_task], connection, webhooks=webhook)
    connection.hset(KEYS.rq_job(job_id), mapping=fields)
    planted[job_id] = "webhooks"

    job_id, fields = job_hash([forged_task], connection, origin=f"reports-{tag}")
    connection.hset(KEYS.rq_job(job_id), mapping=fields)
    planted[job_id] = f"it belongs to queue 'reports-{tag}'"

    job_id, fields = rq_job_fields([forged_task], Keys("elsewhere"))  # type: ignore[list-item]
    fields = {**{name: str(value) for name, value in fields.items()}, "origin": KEYS.task_queue_name}
    connection.hset(KEYS.rq_job(job_id), mapping=fields)
    planted[job_id] = "it reports to 'elsewhere:events'"

    planted[f"missing-{tag}"] = "does not exist"

    foreign = Queue(f"reports-{tag}", connection=connection, serializer=JSONSerializer)
    job = foreign.enqueue("os.mkdir", str(tmp_path / f"foreign-job-ran-{tag}"))
    connection.lrem(foreign.key, 1, job.id)
    planted[job.id] = "a job of another application"

    planted[f"not:an:id:{tag}"] = "not an RQ job id"

    for poison in planted:
        connection.lpush(KEYS.task_queue, poison)
    return planted


def finished(client: Client, count: int) -> bool:
    executions = client.status()["executions"]
    return executions["RUNNING"] == 0 and sum(executions.values()) == count


def moved_aside(connection: redis.Redis) -> dict[str, dict[str, Any]]:
    return {
        fields[b"id"].decode(): {
            "reason": fields[b"reason"].decode(),
            "stream": fields[b"stream"].decode(),
            "copy": json.loads(fields[b"fields"]),
        }
        for _, fields in connection.xrange(KEYS.malformed)
    }


def test_workers_move_every_kind_of_poison_job_aside_and_keep_running_dragon_executions(
    stack: Client, subprocess_env: dict[str, str], redis_client: redis.Redis, tmp_path: Path
) -> None:
    # Given a real dragon task whose job hash someone broke before any worker took it,
    [broken] = send_dragons(stack, 0, 1)
    wait_until(lambda: redis_client.llen(KEYS.task_queue) == 1, 30, "the first task's job")
    broken_job = redis_client.lindex(KEYS.task_queue, 0).decode()
    redis_client.hset(KEYS.rq_job(broken_job), "created_at", "not a date")
    # and poison of every kind at the head of the queue, with dragons queued behind it,
    planted = plant_poison(redis_client, "early", tmp_path)
    send_dragons(stack, 1, 10)
    wait_until(lambda: redis_client.llen(KEYS.task_queue) >= 8, 30, "the dragons' jobs")

    # when workers start on that queue, and meet more poison while they run more dragons,
    workers = [redstep_process(subprocess_env, "worker") for _ in range(WORKERS)]
    try:
        wait_until(lambda: finished(stack, 11), 60, "the first dragons to finish")
        planted.update(plant_poison(redis_client, "late", tmp_path))
        send_dragons(stack, 11, 10)
        wait_until(lambda: finished(stack, 21), 60, "the later dragons to finish")

        # then every worker is still running,
        assert [w.poll() for w in workers] == [None] * WORKERS
    finally:
        for worker in workers:
            stop(worker)

    # every execution succeeded, the broken one through its Retry after its task failed,
    assert stack.status()["executions"]["SUCCEEDED"] == 21
    failed = [e for e in stack.history(broken) if e["type"] == "LambdaFunctionFailed"]
    assert [e["error"] for e in failed] == ["Lambda.ServiceException"]
    assert broken_job in json.loads(failed[0]["cause"])["errorMessage"]
    # every poison job is in the malformed stream once, with its reason and what its key held,
    aside = moved_aside(redis_client)
    assert set(aside) == {*planted, broken_job}
    for job_id, reason in planted.items():
        assert reason in aside[job_id]["reason"], aside[job_id]
        assert aside[job_id]["stream"] == KEYS.task_queue
    assert aside[broken_job]["copy"]["value"]["created_at"] == "not a date"
    assert aside["string-early"]["copy"] == {
        "type": "string",
        "value": "a string where a job hash should be",
        "truncated": False,
    }
    # and nothing was run that should not be, or left behind in a queue or a claim.
    assert not list(tmp_path.glob("foreign-job-ran-*"))
    assert redis_client.llen(KEYS.task_queue) == 0
    assert redis_client.keys("t:claimed:*") == []


# -- the decoding, property-tested ---------------------------------------------------------------

CONNECTION = redis.Redis()  # never connected: decoding reads no key
RQ_FIELDS = [
    b"data", b"created_at", b"origin", b"description", b"enqueued_at", b"started_at", b"ended_at",
    b"last_heartbeat", b"timeout", b"result_ttl", b"failure_ttl", b"status", b"worker_name",
    b"success_callback_name", b"failure_callback_name", b"stopped_callback_name",
    b"success_callback_timeout", b"failure_callback_timeout", b"stopped_callback_timeout", b"meta",
    b"dependency_ids", b"dependency_id", b"allow_dependency_failures", b"enqueue_at_front", b"ttl",
    b"number_of_retries", b"retries_left", b"retry_intervals", b"enqueue_at_front_on_retry",
    b"webhooks", b"group_id", b"result", b"repeats_left", b"repeat_intervals", b"exc_info",
]  # fmt: skip
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
tasks = st.lists(
    st.fixed_dictionaries({"execution": st.text(max_size=6), "token": st.text(max_size=6)}) | json_values,
    max_size=3,
)
job_tuples = st.tuples(
    st.sampled_from([TASK_ENTRY_POINT, "os.mkdir"]) | st.text(max_size=12) | json_values,
    st.none() | json_values,
    st.tuples(tasks, st.text(max_size=8)).map(list) | json_values,
    st.just({}) | json_values,
)
job_data = (
    st.lists(json_values, max_size=5).map(json.dumps) | job_tuples.map(json.dumps) | st.text(max_size=30)
).map(str.encode)
field_values = (
    st.binary(max_size=30)
    | job_data
    | job_data.map(zlib.compress)
    | st.datetimes().map(lambda d: d.isoformat().encode())
    | st.integers().map(lambda n: str(n).encode())
    | st.sampled_from([b"", b"queued", b"-1", b"1h", b"1e999", b"[]", b"[1]", b"\xff\xfe"])
)
arbitrary_hashes = st.builds(
    lambda fields, data: {**fields, **data},
    st.dictionaries(st.sampled_from(RQ_FIELDS) | st.binary(max_size=12), field_values, max_size=12),
    st.fixed_dictionaries({}, optional={b"data": job_data | job_data.map(zlib.compress)}),
)


def sound_job_hash() -> dict[bytes, bytes]:
    _, fields = job_hash([{"execution": "e", "token": "e:1", "function": "F"}], CONNECTION)
    return {name.encode(): value.encode() for name, value in fields.items()}


SOUND = sound_job_hash()
changed_hashes = st.builds(
    lambda changes, dropped: {**{k: v for k, v in SOUND.items() if k not in dropped}, **changes},
    st.dictionaries(st.sampled_from(RQ_FIELDS), field_values, max_size=3),
    st.sets(st.sampled_from(list(SOUND)), max_size=2),
)
job_ids = st.uuids().map(str) | st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True) | st.text(max_size=12)


def assert_runnable_or_malformed(job_id: str, raw: dict[bytes, bytes]) -> None:
    try:
        job = decode_task_job(job_id, raw, CONNECTION)
    except MalformedJob as exc:
        assert exc.reason
        assert all(is_addressable(task) for task in exc.tasks)
        return
    assert job.func is run_tasks
    assert not job.webhooks
    queued, events_key = job.args
    assert isinstance(queued, list) and isinstance(events_key, str)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(job_id=job_ids, raw=arbitrary_hashes)
def test_decoding_any_hash_gives_a_runnable_task_job_or_a_malformed_job_error(
    job_id: str, raw: dict[bytes, bytes]
) -> None:
    assert_runnable_or_malformed(job_id, raw)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=changed_hashes)
def test_decoding_a_task_job_with_fields_changed_or_dropped_never_raises_anything_else(
    raw: dict[bytes, bytes],
) -> None:
    assert_runnable_or_malformed("0b0e1c5e-9d0e-4c3a-8f3e-2b1d4c5e6f70", raw)


def test_a_task_job_as_the_orchestrator_writes_it_decodes_and_a_broken_one_names_its_tasks() -> None:
    job = decode_task_job("0b0e1c5e-9d0e-4c3a-8f3e-2b1d4c5e6f70", SOUND, CONNECTION)
    assert isinstance(job, TaskJob) and job.func is run_tasks

    with pytest.raises(MalformedJob, match="RQ cannot read its hash") as refused:
        decode_task_job("0b0e1c5e-9d0e-4c3a-8f3e-2b1d4c5e6f70", {**SOUND, b"created_at": b"soon"}, CONNECTION)
    assert [t["execution"] for t in refused.value.tasks] == ["e"]


def test_a_worker_process_given_only_poison_in_burst_mode_exits_cleanly(
    subprocess_env: dict[str, str], redis_client: redis.Redis, tmp_path: Path
) -> None:
    planted = plant_poison(redis_client, "burst", tmp_path)

    command = [sys.executable, "-m", "producer.cli", "worker", "--burst"]
    done = subprocess.run(command, env=subprocess_env, capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert set(moved_aside(redis_client)) == set(planted)
