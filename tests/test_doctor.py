"""``redstep doctor``: each invariant broken on purpose is reported by name; a healthy run reports nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import redis

from orchestrator.protocol.keys import EVENT_FIELD
from orchestrator.protocol.leases import lease_record
from orchestrator.runtime.client import Client
from orchestrator.runtime.doctor import Problem, check
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.loop import Orchestrator
from orchestrator.settings import Settings
from tests.chaos import redstep_process, stop
from tests.doctor_helpers import assert_consistent
from tests.runtime_fixtures import LAMBDA, dragon, one_task_machine


def doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "producer.cli", "doctor", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def found(problems: list[Problem]) -> set[tuple[str, str]]:
    return {(problem.subject, problem.invariant) for problem in problems}


def started(redis_client: redis.Redis, settings: Settings, *names: str, machine: Any = None) -> Client:
    """A client, and one execution per name of a one-task machine, its job queued (no worker runs)."""
    client = Client(redis_client, settings)
    client.register_machine("One", machine or one_task_machine())
    for name in names:
        client.start_execution("One", dragon(name), name=name)
    return client


def answer_every_task(redis_client: redis.Redis, settings: Settings) -> None:
    """Play the worker: answer each queued task with a result, and apply the reports, until none runs."""
    keys = Keys(settings.prefix)
    orchestrator = Orchestrator(redis_client, settings, "o1")
    while redis_client.zcard(keys.status("RUNNING")):
        while (job := redis_client.lpop(keys.task_queue)) is not None:
            for task in json.loads(redis_client.hget(Keys.rq_job(job.decode()), "data"))[2][0]:
                report = {"type": "TaskSucceeded", "execution": task["execution"], "token": task["token"]}
                redis_client.xadd(keys.events, {EVENT_FIELD: json.dumps({**report, "output": 1})})
            redis_client.delete(Keys.rq_job(job.decode()))
        orchestrator.run_once()


def test_a_healthy_finished_run_and_running_executions_with_queued_jobs_report_nothing(
    redis_client: redis.Redis, settings: Settings, subprocess_env: dict[str, str]
) -> None:
    client = started(redis_client, settings, *(f"done-{i}" for i in range(5)))
    answer_every_task(redis_client, settings)
    for i in range(3):
        client.start_execution("One", dragon(f"queued-{i}"), name=f"queued-{i}")

    assert check(redis_client, settings) == []
    assert_consistent(redis_client, settings)
    plain, as_json = doctor(subprocess_env), doctor(subprocess_env, "--json")
    assert plain.returncode == 0, plain.stderr
    assert "healthy: checked 8 execution(s), 3 running" in plain.stdout
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout) == {"healthy": True, "executions": 8, "running": 3, "problems": []}


def test_an_execution_whose_queued_job_was_deleted_is_reported_stuck_by_name_and_doctor_exits_1(
    redis_client: redis.Redis, settings: Settings, subprocess_env: dict[str, str]
) -> None:
    started(redis_client, settings, "lost", "fine")
    keys = Keys(settings.prefix)
    # Given the job of "lost" deleted from the task queue (one job per execution here),
    job_ids = [job_id.decode() for job_id in redis_client.lrange(keys.task_queue, 0, -1)]
    lost_job = next(j for j in job_ids if b'"lost"' in redis_client.hget(Keys.rq_job(j), "data"))
    redis_client.lrem(keys.task_queue, 1, lost_job)
    redis_client.delete(Keys.rq_job(lost_job))

    problems = check(redis_client, settings)
    result = doctor(subprocess_env, "--json")

    assert found(problems) == {("lost", "something-moves-it")}
    assert "`redstep executions stop lost`" in problems[0].explanation
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["healthy"] is False
    assert [(p["subject"], p["invariant"], p["severity"]) for p in report["problems"]] == [
        ("lost", "something-moves-it", "error")
    ]
    plain = doctor(subprocess_env)
    assert plain.returncode == 1
    assert "ERROR   lost  [something-moves-it] RUNNING, and nothing will move it" in plain.stdout


def test_a_job_claimed_by_a_worker_and_a_leased_task_count_as_something_that_moves_it(
    redis_client: redis.Redis, settings: Settings
) -> None:
    started(redis_client, settings, "claimed", "leased")
    keys = Keys(settings.prefix)
    # A worker (in the workers set, as each one is before it dequeues) dequeued one job into its
    # claimed list, and started the other (a lease, no job).
    redis_client.sadd(keys.workers, "w1")
    redis_client.lmove(keys.task_queue, keys.claimed("w1"))
    job = redis_client.lpop(keys.task_queue).decode()
    [task] = json.loads(redis_client.hget(Keys.rq_job(job), "data"))[2][0]
    lease = lease_record(task, "w2", 30)
    redis_client.zadd(keys.leases, {lease: 1e12})

    assert check(redis_client, settings) == []

    redis_client.zrem(keys.leases, lease)
    assert found(check(redis_client, settings)) == {(task["execution"], "something-moves-it")}


def test_a_lease_an_earlier_version_left_in_the_timers_zset_counts_as_something_that_moves_it(
    redis_client: redis.Redis, settings: Settings
) -> None:
    started(redis_client, settings, "leased")
    keys = Keys(settings.prefix)
    job = redis_client.lpop(keys.task_queue).decode()
    [task] = json.loads(redis_client.hget(Keys.rq_job(job), "data"))[2][0]
    # Before leases had their own key, a lease was the TaskFailed event itself, among the timers.
    lease = {"type": "TaskFailed", "execution": task["execution"], "token": task["token"], "error": "x"}
    redis_client.zadd(keys.timers, {json.dumps(lease): 1e12})

    assert check(redis_client, settings) == []


def test_a_wait_state_s_timer_moves_it_and_without_the_timer_it_is_stuck(
    redis_client: redis.Redis, settings: Settings
) -> None:
    waiting = {"StartAt": "Nap", "States": {"Nap": {"Type": "Wait", "Seconds": 3600, "End": True}}}
    started(redis_client, settings, "napping", machine=waiting)
    keys = Keys(settings.prefix)
    assert check(redis_client, settings) == []

    redis_client.delete(keys.timers)

    [problem] = check(redis_client, settings)
    assert (problem.subject, problem.invariant) == ("napping", "something-moves-it")
    assert "state 'Nap'" in problem.explanation


def test_a_report_waiting_on_the_event_stream_and_a_stop_request_count_as_something_that_moves_it(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client = started(redis_client, settings, "reported", "stopping")
    keys = Keys(settings.prefix)
    tokens = {}
    for job in redis_client.lrange(keys.task_queue, 0, -1):
        [task] = json.loads(redis_client.hget(Keys.rq_job(job.decode()), "data"))[2][0]
        tokens[task["execution"]] = task["token"]
    redis_client.delete(keys.task_queue)
    report = {"type": "TaskSucceeded", "execution": "reported", "token": tokens["reported"], "output": 1}
    redis_client.xadd(keys.events, {EVENT_FIELD: json.dumps(report)})
    client.stop_execution("stopping")

    assert check(redis_client, settings) == []


def test_index_entries_closed_index_and_history_that_disagree_with_the_execution_are_each_reported(
    redis_client: redis.Redis, settings: Settings
) -> None:
    started(redis_client, settings, *(f"e{i}" for i in range(5)))
    answer_every_task(redis_client, settings)
    keys = Keys(settings.prefix)
    redis_client.zrem(keys.status("SUCCEEDED"), "e0")  # not listed under its status
    redis_client.zadd(keys.status("RUNNING"), {"e1": 1.0})  # listed under a second status
    redis_client.zrem(keys.closed, "e2")  # finished, never swept
    redis_client.rpop(keys.history("e3"))  # a truncated history
    redis_client.zrem(keys.executions, "e4")  # missing from the index of all executions
    redis_client.zadd(keys.executions, {"ghost": 1.0})  # an entry naming no execution
    redis_client.rpush(keys.history("phantom"), "{}")  # a history naming no execution

    problems = check(redis_client, settings)

    assert found(problems) == {
        ("e0", "status-index"),
        ("e1", "status-index"),
        ("e2", "closed-index"),
        ("e3", "history-length"),
        ("e4", "execution-index"),
        ("ghost", "index-without-execution"),
        ("phantom", "history-without-execution"),
    }
    assert all(problem.fails for problem in problems)
    history = next(p for p in problems if p.subject == "e3")
    assert "holds 6 event(s) but its lastEventId is 7" in history.explanation


def test_malformed_data_written_by_others_is_reported_never_a_crash(
    redis_client: redis.Redis, settings: Settings
) -> None:
    started(redis_client, settings, "fine")
    keys = Keys(settings.prefix)
    redis_client.set(keys.execution("a-string"), "not a hash")
    redis_client.hset(keys.execution("not-json"), mapping={"execution": "{", "version": "1"})
    redis_client.hset(keys.execution("no-version"), mapping={"execution": json.dumps({"name": "no-version"})})
    blob = json.loads(redis_client.hget(keys.execution("fine"), "execution"))
    redis_client.hset(keys.execution("renamed"), mapping={"execution": json.dumps(blob), "version": "1"})
    redis_client.set(keys.status("FAILED"), "not a sorted set")
    redis_client.set(keys.history("fine-history-of-none"), "x")
    # Junk where the doctor looks for what moves executions: none of it may crash it.
    redis_client.rpush(keys.task_queue, "no-such-job", "\xff")
    redis_client.hset(Keys.rq_job("junk"), "data", b"\x00\x01")
    redis_client.rpush(keys.task_queue, "junk")
    redis_client.set(f"{keys.prefix}:claimed:w9", "not a list")
    redis_client.zadd(keys.timers, {"not json": 1.0, "[1]": 2.0})
    redis_client.zadd(keys.leases, {"not json": 1e12, "[1]": 1e12, '{"execution": 1}': 1e12})
    redis_client.xadd(keys.events, {"event": b"\xff{"})
    redis_client.xadd(keys.events, {"other": "x"})

    problems = check(redis_client, settings)

    assert found(problems) == {
        ("a-string", "readable-execution"),
        ("not-json", "readable-execution"),
        ("no-version", "readable-execution"),
        ("renamed", "readable-execution"),
        (keys.status("FAILED"), "index-type"),
        ("fine-history-of-none", "history-without-execution"),
    }
    by_subject = {problem.subject: problem.explanation for problem in problems}
    assert "is not a hash" in by_subject["a-string"]
    assert "not JSON" in by_subject["not-json"]
    assert "holds the execution named 'fine'" in by_subject["renamed"]


def dispatch_ran(redis_client: redis.Redis, settings: Settings, name: str) -> None:
    """Answer the dispatch job of callback task ``name`` as a worker would, and apply it."""
    keys = Keys(settings.prefix)
    job = redis_client.lpop(keys.task_queue).decode()
    [task] = json.loads(redis_client.hget(Keys.rq_job(job), "data"))[2][0]
    report = {"type": "TaskSucceeded", "execution": name, "token": task["token"], "output": None}
    redis_client.xadd(keys.events, {EVENT_FIELD: json.dumps(report)})
    Orchestrator(redis_client, settings, "o1").run_once()


def callback_machine(**fields: Any) -> dict[str, Any]:
    task = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {"FunctionName": LAMBDA + "Approve", "Payload": {"token.$": "$$.Task.Token"}},
        "End": True,
        **fields,
    }
    return {"StartAt": "Approve", "States": {"Approve": task}}


def test_a_callback_waiting_with_no_timeout_is_a_warning_that_does_not_fail_the_check(
    redis_client: redis.Redis, settings: Settings, subprocess_env: dict[str, str]
) -> None:
    started(redis_client, settings, "approval", machine=callback_machine())
    dispatch_ran(redis_client, settings, "approval")

    [problem] = check(redis_client, settings)
    result = doctor(subprocess_env)

    assert (problem.subject, problem.invariant, problem.severity) == (
        "approval",
        "callback-has-a-timeout",
        "warning",
    )
    assert "only SendTaskSuccess or SendTaskFailure will move it" in problem.explanation
    assert_consistent(redis_client, settings)
    assert result.returncode == 0
    assert "WARNING approval  [callback-has-a-timeout]" in result.stdout
    assert "1 warning(s), which do not fail the check" in result.stdout


def test_a_callback_waiting_with_a_timeout_reports_nothing(
    redis_client: redis.Redis, settings: Settings
) -> None:
    started(redis_client, settings, "approval", machine=callback_machine(TimeoutSeconds=3600))
    dispatch_ran(redis_client, settings, "approval")

    assert check(redis_client, settings) == []


def test_a_doctor_run_against_a_live_stack_never_reports_an_execution_that_is_moving(
    redis_client: redis.Redis, settings: Settings, subprocess_env: dict[str, str]
) -> None:
    client = started(redis_client, settings)
    keys = Keys(settings.prefix)
    processes = [redstep_process(subprocess_env, "orchestrator")]
    processes += [redstep_process(subprocess_env, "worker") for _ in range(2)]
    try:
        for i in range(300):
            client.start_execution("One", dragon(f"live-{i}"), name=f"live-{i}")
        checks = 0
        # Every check while the stack works catches executions between commits and tokens in flight.
        while checks < 3 or redis_client.zcard(keys.status("RUNNING")):
            assert [problem for problem in check(redis_client, settings) if problem.fails] == []
            checks += 1
            assert checks < 500, "the executions did not finish"
    finally:
        for process in processes:
            stop(process)
    assert_consistent(redis_client, settings)
