"""An execution stored before the ``schema`` field existed still runs on after an upgrade.

``tests/fixtures/executions_schema1.json`` holds two executions exactly as the runtime stored
them then (schema 1): one RUNNING, waiting on the two tasks of a Parallel (one with a
TimeoutSeconds timer), and one FAILED in its task. The pure core and the runtime on a real
Redis must take them as they are: the waiting one completes when its tasks report, the
failed one redrives, and what gets stored again says ``"schema": 2``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator.asl.definition import StateMachine
from orchestrator.asl.engine import SUCCEEDED, advance, redrive_execution, start_execution
from orchestrator.asl.execution import NEWEST_SCHEMA, SCHEMA_VERSION, upgrade_execution
from orchestrator.runtime.callbacks import send_task_success
from orchestrator.runtime.client import Client
from orchestrator.runtime.loop import Orchestrator
from orchestrator.settings import Settings
from tests.runtime_fixtures import drive, queued_tasks

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "executions_schema1.json").read_text())
WAITING, FAILED = FIXTURE["waiting-1"], FIXTURE["failing-1"]
LATER = 1_900_000_000.0


def stored(entry: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(entry["execution"])


def task_tokens(execution: dict[str, Any]) -> list[str]:
    return sorted(token for token, (_, kind) in execution["tokens"].items() if kind == "task")


def test_the_fixture_is_of_the_layout_before_the_schema_field() -> None:
    assert "schema" not in WAITING["execution"] and "schema" not in FAILED["execution"]
    assert WAITING["execution"]["status"] == "RUNNING" and len(task_tokens(WAITING["execution"])) == 2
    assert FAILED["execution"]["status"] == "FAILED"


def test_a_new_execution_carries_the_current_schema() -> None:
    machine = StateMachine.parse(WAITING["definition"], "Waiting")
    step = start_execution(machine, "fresh", {"order": 1}, LATER)
    assert step.execution["schema"] == SCHEMA_VERSION == 2


def test_upgrading_a_version_1_execution_adds_the_field_and_keeps_every_other_one() -> None:
    old = stored(WAITING)
    upgraded = upgrade_execution(copy.deepcopy(old))
    assert upgraded["schema"] == 2
    assert {key: value for key, value in upgraded.items() if key != "schema"} == old


def test_an_execution_from_a_newer_redstep_is_refused_with_a_clear_error() -> None:
    newer = {**stored(WAITING), "schema": NEWEST_SCHEMA + 1}
    with pytest.raises(ValueError, match="schema 4; this redstep reads schema 1 to 3"):
        upgrade_execution(newer)


def test_a_stored_waiting_execution_completes_when_its_tasks_report() -> None:
    machine = StateMachine.parse(WAITING["definition"], "Waiting")
    execution = stored(WAITING)
    left, right = task_tokens(execution)
    step = advance(machine, execution, {"type": "TaskSucceeded", "token": left, "output": "L"}, LATER)
    assert step.execution["schema"] == 2 and step.execution["status"] == "RUNNING"
    # The Left task's TimeoutSeconds timer is no longer needed once it reported.
    assert {"type": "CancelTimer", "token": "waiting-1:5"} in step.actions
    step = advance(machine, execution, {"type": "TaskSucceeded", "token": right, "output": "R"}, LATER)
    assert step.execution["status"] == SUCCEEDED
    assert step.execution["output"] == {"order": 7, "prepared": {"ready": True}, "results": ["L", "R"]}


def test_a_stored_failed_execution_redrives_from_the_state_that_failed() -> None:
    machine = StateMachine.parse(FAILED["definition"], "Failing")
    step = redrive_execution(machine, stored(FAILED), LATER)
    execution = step.execution
    assert execution["schema"] == 2 and execution["status"] == "RUNNING" and execution["redriveCount"] == 1
    [task] = [action for action in step.actions if action["type"] == "RunTask"]
    assert task["function"] == "Broken" and task["payload"] == {"order": 8, "prepared": {"ready": True}}
    report = {"type": "TaskSucceeded", "token": task["token"], "output": {"fixed": True}}
    assert advance(machine, execution, report, LATER + 1).execution["status"] == SUCCEEDED


# -- the runtime, on a real Redis --------------------------------------------------------------------


def put_stored(redis_client: redis.Redis, client: Client, machine_name: str, entry: dict[str, Any]) -> str:
    """Register the machine and write the execution's hash as the old runtime left it."""
    client.register_machine(machine_name, entry["definition"])
    execution = entry["execution"]
    key = client.keys.execution(execution["name"])
    redis_client.hset(key, mapping={"execution": json.dumps(execution), "version": entry["version"]})
    return execution["name"]


def schema_in_redis(redis_client: redis.Redis, client: Client, name: str) -> Any:
    return json.loads(redis_client.hget(client.keys.execution(name), "execution"))["schema"]


def test_the_runtime_completes_a_stored_waiting_execution_when_its_tasks_report(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client = Client(redis_client, settings)
    name = put_stored(redis_client, client, "Waiting", WAITING)
    left, right = task_tokens(WAITING["execution"])
    send_task_success(redis_client, settings, left, "L")
    send_task_success(redis_client, settings, right, "R")
    orchestrator = Orchestrator(redis_client, settings, "o1")
    drive(redis_client, settings, [orchestrator], finished(name, "SUCCEEDED"), with_worker=False)
    assert client.describe(name)["output"]["results"] == ["L", "R"]
    assert schema_in_redis(redis_client, client, name) == 2


def test_the_runtime_redrives_a_stored_failed_execution(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client = Client(redis_client, settings)
    name = put_stored(redis_client, client, "Failing", FAILED)
    described = client.redrive(name)
    assert described["status"] == "RUNNING"
    assert schema_in_redis(redis_client, client, name) == 2
    [task] = queued_tasks(redis_client, settings)
    assert task["function"] == "Broken" and task["attempt"] == 1


def finished(name: str, status: str) -> Any:
    return lambda client: (client.describe(name) or {}).get("status") == status
