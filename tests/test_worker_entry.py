"""run_tasks: every task's outcome becomes one report on the event stream, never a failed job."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from rq import Queue
from rq.registry import FailedJobRegistry

from orchestrator.protocol.jobs import TASK_ENTRY_POINT
from orchestrator.settings import Settings
from worker import entry
from worker.claiming import task_queue_name
from worker.entry import carry_out
from worker.jobs import SERIALIZER, TaskJob
from worker.process import task_worker
from worker.registry import FunctionRegistry, default_registry

EVENTS = "t:events"


class DragonTooSmall(Exception):
    pass


def Measure(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Succeeds with what it read from its context."""
    return {"length": len(event["name"]), "function": context.function_name, "attempt": context.attempt}


def Reject(event: Any, context: Any) -> None:
    raise DragonTooSmall(f"{event['name']} is too small")


def ReturnSet(event: Any, context: Any) -> set[int]:
    return {1, 2}


def Exit(event: Any, context: Any) -> None:
    sys.exit(3)


@pytest.fixture
def registry() -> FunctionRegistry:
    registry = FunctionRegistry()
    for fn in (Measure, Reject, ReturnSet, Exit):
        registry.register(fn.__name__, fn)
    return registry


def task(function: str, payload: Any = None, n: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "execution": f"exec-{n}",
        "token": f"token-{n}",
        "function": function,
        "function_arn": f"arn:aws:lambda:eu-west-1:123456789012:function:{function}",
        "payload": payload if payload is not None else {"name": "Smok"},
        "attempt": 0,
        **extra,
    }


def stream_reports(client: redis.Redis) -> list[dict[str, Any]]:
    entries = client.xrange(EVENTS)
    assert all(list(fields) == [b"event"] for _, fields in entries)
    return [json.loads(fields[b"event"]) for _, fields in entries]


def test_a_successful_function_reports_task_succeeded_with_its_output(
    redis_client: redis.Redis, registry: FunctionRegistry
) -> None:
    carry_out([task("Measure", attempt=2)], EVENTS, connection=redis_client, prefix="t", registry=registry)

    assert stream_reports(redis_client) == [
        {
            "type": "TaskSucceeded",
            "execution": "exec-1",
            "token": "token-1",
            "output": {"length": 4, "function": "Measure", "attempt": 2},
        }
    ]


def test_an_exception_reports_task_failed_named_after_its_class_with_lambdas_cause(
    redis_client: redis.Redis, registry: FunctionRegistry
) -> None:
    carry_out([task("Reject")], EVENTS, connection=redis_client, prefix="t", registry=registry)

    [report] = stream_reports(redis_client)
    assert (report["type"], report["execution"], report["token"]) == ("TaskFailed", "exec-1", "token-1")
    assert report["error"] == "DragonTooSmall"
    cause = json.loads(report["cause"])
    assert cause["errorType"] == "DragonTooSmall"
    assert cause["errorMessage"] == "Smok is too small"
    assert isinstance(cause["stackTrace"], list)


def test_a_function_nobody_registered_reports_resource_not_found(
    redis_client: redis.Redis, registry: FunctionRegistry
) -> None:
    carry_out([task("os.system")], EVENTS, connection=redis_client, prefix="t", registry=registry)

    [report] = stream_reports(redis_client)
    assert report["type"] == "TaskFailed"
    assert report["error"] == "Lambda.ResourceNotFoundException"
    assert "arn:aws:lambda:eu-west-1:123456789012:function:os.system:$LATEST" in report["cause"]


def test_a_result_json_cannot_carry_reports_a_marshal_error(
    redis_client: redis.Redis, registry: FunctionRegistry
) -> None:
    carry_out([task("ReturnSet")], EVENTS, connection=redis_client, prefix="t", registry=registry)

    [report] = stream_reports(redis_client)
    assert report["error"] == "Runtime.MarshalError"
    assert "Unable to marshal response: Object of type set is not JSON serializable" in report["cause"]


def test_a_function_calling_sys_exit_fails_its_task_and_the_rest_still_run(
    redis_client: redis.Redis, registry: FunctionRegistry
) -> None:
    tasks = [task("Exit", n=1), task("Measure", n=2)]

    carry_out(tasks, EVENTS, connection=redis_client, prefix="t", registry=registry)

    assert [(r["type"], r.get("error")) for r in stream_reports(redis_client)] == [
        ("TaskFailed", "Runtime.ExitError"),
        ("TaskSucceeded", None),
    ]


def test_reports_keep_task_order_and_a_task_without_an_address_is_dropped(
    redis_client: redis.Redis, registry: FunctionRegistry
) -> None:
    tasks = [
        task("Measure", n=1),
        {"function": "Measure"},
        "nonsense",
        task("Reject", n=2),
        task("Nope", n=3),
    ]

    carry_out(tasks, EVENTS, connection=redis_client, prefix="t", registry=registry)  # type: ignore[arg-type]

    assert [(r["execution"], r["type"]) for r in stream_reports(redis_client)] == [
        ("exec-1", "TaskSucceeded"),
        ("exec-2", "TaskFailed"),
        ("exec-3", "TaskFailed"),
    ]


@pytest.fixture
def in_process_worker(settings: Settings, redis_client: redis.Redis) -> Iterator[Queue]:
    """A queue and, on each call of ``work()``, a burst TaskWorker in this process.

    RQ installs SIGINT/SIGTERM handlers, which are put back afterwards.
    """
    saved_signals = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    default_registry.register("Reject", Reject)
    queue = Queue(
        task_queue_name(settings), connection=redis_client, serializer=SERIALIZER, job_class=TaskJob
    )
    yield queue
    default_registry.unregister("Reject")
    for sig, handler in saved_signals.items():
        signal.signal(sig, handler)


def work_in_process(settings: Settings, redis_client: redis.Redis) -> None:
    task_worker(redis_client, settings).work(burst=True, logging_level="WARNING")


def test_a_raising_function_does_not_fail_the_rq_job(
    settings: Settings, redis_client: redis.Redis, in_process_worker: Queue
) -> None:
    job = in_process_worker.enqueue(
        TASK_ENTRY_POINT, [task("Reject"), task("ValidateDragon", {"dragon_name_str": "Smok"}, n=2)], EVENTS
    )

    work_in_process(settings, redis_client)

    assert [r["type"] for r in stream_reports(redis_client)] == ["TaskFailed", "TaskSucceeded"]
    assert stream_reports(redis_client)[1]["output"] == {"exists": False}
    assert job.id not in FailedJobRegistry(queue=in_process_worker).get_job_ids()


def moved_aside(client: redis.Redis) -> dict[str, str]:
    """The job ids in the malformed stream, with the reason each was moved aside."""
    return {f[b"id"].decode(): f[b"reason"].decode() for _, f in client.xrange("t:malformed")}


def test_a_job_naming_another_function_is_moved_aside_without_running_it(
    settings: Settings, redis_client: redis.Redis, in_process_worker: Queue, tmp_path: Any
) -> None:
    target = tmp_path / "should-not-exist"
    job = in_process_worker.enqueue("os.mkdir", str(target))

    work_in_process(settings, redis_client)

    assert not target.exists()
    assert "it runs 'os.mkdir'" in moved_aside(redis_client)[job.id]
    assert job.id not in FailedJobRegistry(queue=in_process_worker).get_job_ids()


def test_a_job_naming_a_callback_is_moved_aside_without_running_anything(
    settings: Settings, redis_client: redis.Redis, in_process_worker: Queue, tmp_path: Any
) -> None:
    from rq import Callback

    job = in_process_worker.enqueue(
        TASK_ENTRY_POINT, [task("Reject")], EVENTS, on_failure=Callback("os.abort")
    )

    work_in_process(settings, redis_client)

    assert stream_reports(redis_client) == []
    assert "callbacks" in moved_aside(redis_client)[job.id]


def Linger(event: Any, context: Any) -> None:
    import time

    time.sleep(event["seconds"])


def test_a_function_outliving_its_job_times_out_and_the_rest_of_the_job_is_not_started(
    settings: Settings, redis_client: redis.Redis, in_process_worker: Queue
) -> None:
    default_registry.register("Linger", Linger)
    tasks = [task("Linger", {"seconds": 5}, n=1), task("Reject", n=2)]
    job = in_process_worker.enqueue(TASK_ENTRY_POINT, tasks, EVENTS, job_timeout=1)

    try:
        work_in_process(settings, redis_client)
    finally:
        default_registry.unregister("Linger")

    got = stream_reports(redis_client)
    assert [(r["execution"], r["error"]) for r in got] == [
        ("exec-1", "Sandbox.Timedout"),
        ("exec-2", "Sandbox.Timedout"),
    ]
    assert "Task timed out after 1.00 seconds" in json.loads(got[0]["cause"])["errorMessage"]
    assert "Task not started" in json.loads(got[1]["cause"])["errorMessage"]
    assert job.id not in FailedJobRegistry(queue=in_process_worker).get_job_ids()


def test_run_tasks_outside_an_rq_job_says_to_call_carry_out() -> None:
    with pytest.raises(RuntimeError, match="carry_out"):
        entry.run_tasks([], EVENTS)
