"""``redstep executions stop``: AWS's StopExecution, through the orchestrators' ordinary commit path.

Every process is real: the orchestrator and the worker run as ``redstep`` processes, and the
stop is the CLI's. A stopped execution ends ABORTED with an ExecutionAborted event holding the
error and cause; a late report of its task changes nothing; a stuck execution (nothing would
ever move it) is stopped the same way.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import Keys
from orchestrator.settings import Settings
from tests.chaos import HOLD_FUNCTIONS, events_settled, hold_machine, redstep_process, stop, wait_until
from tests.doctor_helpers import assert_consistent
from tests.runtime_fixtures import one_task_machine


def redstep(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "producer.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def env(subprocess_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    (tmp_path / "hold.py").write_text(HOLD_FUNCTIONS)
    return {**subprocess_env, "REDSTEP_LEASE_SECONDS": "5"}


def settings_of(env: dict[str, str]) -> Settings:
    return Settings(redis_url=env["REDIS_URL"], prefix=env["REDSTEP_PREFIX"])


def test_a_running_execution_stopped_ends_aborted_and_its_task_s_late_report_changes_nothing(
    env: dict[str, str], redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = settings_of(env)
    client, keys = Client(redis_client, settings), Keys(settings.prefix)
    client.register_machine("Hold", hold_machine())
    orchestrator = redstep_process(env, "orchestrator")
    worker = redstep_process(env, "worker", "--functions", str(tmp_path / "hold.py"))
    try:
        # Given an execution whose task is running on a worker,
        client.start_execution("Hold", {"dir": str(tmp_path)}, name="held")
        wait_until(lambda: (tmp_path / "attempt-1").exists(), 60, "the task to start")

        # when it is stopped with an error and a cause,
        stopped = redstep(
            env, "executions", "stop", "held", "--error", "Operator.Stop", "--cause", "not needed"
        )

        # then it is ABORTED with both, as StopExecution leaves it,
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.strip() == "execution held stopped: ABORTED"
        described = client.describe("held")
        assert (described["status"], described["error"], described["cause"]) == (
            "ABORTED",
            "Operator.Stop",
            "not needed",
        )
        assert described["stopDate"] is not None
        history = client.history("held")
        assert history[-1]["type"] == "ExecutionAborted"
        assert (history[-1]["error"], history[-1]["cause"]) == ("Operator.Stop", "not needed")

        # and the task's report, once it finishes, changes nothing.
        (tmp_path / "release-1").touch()
        wait_until(lambda: not redis_client.zcard(keys.leases), 60, "the task's lease to go")
        wait_until(lambda: events_settled(redis_client, keys), 60, "the late report to be consumed")
        assert client.describe("held") == described
        assert client.history("held") == history
    finally:
        stop(worker)
        stop(orchestrator)
    assert_consistent(redis_client, settings)


def test_a_stuck_execution_is_reported_by_the_doctor_and_stopped_through_the_event_stream(
    env: dict[str, str], redis_client: redis.Redis
) -> None:
    settings = settings_of(env)
    client, keys = Client(redis_client, settings), Keys(settings.prefix)
    client.register_machine("One", one_task_machine())
    client.start_execution("One", {}, name="stuck")
    # Given an execution whose only task's job was lost: nothing will ever move it,
    redis_client.delete(keys.task_queue)
    doctor = redstep(env, "doctor")
    assert doctor.returncode == 1
    assert "stuck  [something-moves-it]" in doctor.stdout

    # when it is stopped while no orchestrator runs, the request waits on the event stream,
    waited = redstep(env, "executions", "stop", "stuck", "--wait", "0.5")
    assert waited.returncode == 1
    assert "the stop of stuck was not applied within 0.5s: is an orchestrator running" in waited.stderr
    assert client.describe("stuck")["status"] == "RUNNING"
    assert redstep(env, "doctor").returncode == 0  # the stop request will move it

    # and once an orchestrator runs, it ends ABORTED and the doctor finds nothing wrong.
    orchestrator = redstep_process(env, "orchestrator")
    try:
        assert client.wait("stuck", timeout=60)["status"] == "ABORTED"
    finally:
        stop(orchestrator)
    assert [event["type"] for event in client.history("stuck")][-1] == "ExecutionAborted"
    assert redstep(env, "doctor").returncode == 0
    assert_consistent(redis_client, settings)


def test_stopping_an_execution_that_ended_changes_nothing_and_an_unknown_one_is_not_found(
    env: dict[str, str], redis_client: redis.Redis
) -> None:
    settings = settings_of(env)
    client = Client(redis_client, settings)
    client.register_machine("One", one_task_machine())
    client.start_execution("One", {}, name="once")
    orchestrator = redstep_process(env, "orchestrator")
    try:
        first = redstep(env, "executions", "stop", "once", "--json")
        # As on AWS, a second stop is no error, and the execution stays as the first left it.
        second = redstep(env, "executions", "stop", "once", "--error", "Again")
    finally:
        stop(orchestrator)
    unknown = redstep(env, "executions", "stop", "nobody")
    too_long = redstep(env, "executions", "stop", "once", "--error", "E" * 257)

    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["execution"]["status"] == "ABORTED"
    assert second.returncode == 0
    assert second.stdout.strip() == "execution once already ended ABORTED: nothing to stop"
    assert [e["type"] for e in client.history("once")].count("ExecutionAborted") == 1
    assert client.describe("once")["error"] is None
    assert unknown.returncode == 1 and "execution nobody not found" in unknown.stderr
    assert too_long.returncode == 2 and "the error is 257 characters long" in too_long.stderr
