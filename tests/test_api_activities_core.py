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
