"""The pure core's side of activities: an activity ARN is a Task resource that emits RunActivity."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.asl import engine
from orchestrator.asl.definition import StateMachine
from orchestrator.asl.resources import parse_resource

ACTIVITY = "arn:aws:states:eu-west-1:123456789012:activity:greeter"


def machine(**fields: Any) -> StateMachine:
    task = {"Type": "Task", "Resource": ACTIVITY, "End": True, **fields}
    return StateMachine.parse(json.dumps({"StartAt": "Work", "States": {"Work": task}}), "Greeting")


def test_an_activity_arn_is_read_as_an_activity_resource() -> None:
    resource = parse_resource(ACTIVITY)
    # A callback task whose dispatch is the runtime's delivery to the activity's pollers.
    assert (resource.kind, resource.target, resource.callback) == ("activity", "greeter", True)
    assert resource.scheduled_event == "ActivityScheduled"
    with pytest.raises(ValueError, match="unsupported resource"):
        parse_resource("arn:aws:states:eu-west-1:123456789012:activity:")


def test_entering_an_activity_task_asks_for_its_delivery_and_waits_on_a_task_token() -> None:
    step = engine.start_execution(machine(), "greet-1", {"name": "Ada"}, 100.0)
    (action,) = [action for action in step.actions if action["type"] == "RunActivity"]
    assert (action["activity"], action["input"]) == ("greeter", {"name": "Ada"})
    thread, kind = step.execution["tokens"][action["token"]]
    assert kind == "dispatch"
    (callback,) = [t for t, (owner, k) in step.execution["tokens"].items() if owner == thread and k == "task"]
    scheduled = next(event for event in step.history if event["type"] == "ActivityScheduled")
    assert (scheduled["resource"], scheduled["input"]) == (ACTIVITY, {"name": "Ada"})

    done = engine.advance(
        machine(),
        step.execution,
        {"type": "TaskSucceeded", "token": callback, "output": {"ok": 1}},
        101.0,
    )
    assert (done.execution["status"], done.execution["output"]) == ("SUCCEEDED", {"ok": 1})
    assert "ActivitySucceeded" in [event["type"] for event in done.history]


def test_an_activity_nobody_answers_in_time_fails_with_states_timeout() -> None:
    definition = machine(TimeoutSeconds=5)
    step = engine.start_execution(definition, "greet-2", {}, 100.0)
    (timer,) = [action for action in step.actions if action["type"] == "SetTimer"]
    fired = engine.advance(definition, step.execution, {"type": "TimerFired", "token": timer["token"]}, 105.0)
    assert (fired.execution["status"], fired.execution["error"]) == ("FAILED", "States.Timeout")
    assert "ActivityTimedOut" in [event["type"] for event in fired.history]


def callback_token(step: engine.Step) -> str:
    (action,) = [action for action in step.actions if action["type"] == "RunActivity"]
    thread, _ = step.execution["tokens"][action["token"]]
    (token,) = [t for t, (owner, k) in step.execution["tokens"].items() if owner == thread and k == "task"]
    return token


def started(token: str, worker: str | None = "worker-7") -> dict[str, Any]:
    event = {"type": "ActivityStarted", "token": token}
    return event if worker is None else {**event, "workerName": worker}


def test_an_activity_task_starts_when_a_worker_takes_it_and_the_event_names_the_worker() -> None:
    definition = machine()
    step = engine.start_execution(definition, "greet-3", {"name": "Ada"}, 100.0)
    assert [event["type"] for event in step.history][-1] == "ActivityScheduled"  # not started yet

    taken = engine.advance(definition, step.execution, started(callback_token(step)), 103.0)
    (event,) = taken.history
    assert (event["type"], event["workerName"], event["timestamp"]) == ("ActivityStarted", "worker-7", 103.0)
    assert event["previousEventId"] == step.history[-1]["id"]  # it follows its state's chain
    assert taken.execution["status"] == "RUNNING"

    # GetActivityTask's workerName is optional; without one the event has no details.
    step = engine.start_execution(definition, "greet-5", {}, 100.0)
    (event,) = engine.advance(definition, step.execution, started(callback_token(step), None), 101.0).history
    assert "workerName" not in event


def test_a_stale_activity_started_changes_nothing() -> None:
    definition = machine(TimeoutSeconds=5)
    step = engine.start_execution(definition, "greet-6", {}, 100.0)
    token = callback_token(step)
    (timer,) = [action for action in step.actions if action["type"] == "SetTimer"]
    timed_out = engine.advance(
        definition, step.execution, {"type": "TimerFired", "token": timer["token"]}, 105.0
    )
    assert timed_out.execution["status"] == "FAILED"

    late = engine.advance(definition, timed_out.execution, started(token), 106.0)
    assert late.history == [] and late.actions == []
    running = engine.start_execution(definition, "greet-7", {}, 100.0)
    forged = engine.advance(definition, running.execution, started("greet-7:999"), 101.0)
    assert forged.history == []


def test_heartbeat_seconds_count_from_when_a_worker_takes_the_task() -> None:
    definition = machine(HeartbeatSeconds=10)
    step = engine.start_execution(definition, "greet-8", {}, 100.0)
    assert not [action for action in step.actions if action["type"] == "SetTimer"]  # queued: not late

    taken = engine.advance(definition, step.execution, started(callback_token(step)), 150.0)
    (timer,) = [action for action in taken.actions if action["type"] == "SetTimer"]
    assert timer["due"] == 160.0
    fired = engine.advance(
        definition, taken.execution, {"type": "TimerFired", "token": timer["token"]}, 160.0
    )
    assert (fired.execution["status"], fired.execution["error"]) == ("FAILED", "States.HeartbeatTimeout")
    assert fired.history[0]["type"] == "ActivityTimedOut"
