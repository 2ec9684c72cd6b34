"""The dashboard's graph (layout and SVG) and its reading of a history into state statuses."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from orchestrator.asl.definition import StateMachine
from orchestrator.asl.history import history_events
from orchestrator.dashboard.graph import MAX_STATES, GraphError, lay_out, render_svg
from orchestrator.dashboard.runs import read_course
from orchestrator.local import LocalRunner

DRAGONS = Path(__file__).resolve().parents[1] / "orchestrator" / "state_machines" / "dragon_pipeline.asl.json"
LAMBDA = "arn:aws:lambda:us-east-1:000000000000:function:"

CAUGHT_PARALLEL = {
    "StartAt": "Split",
    "States": {
        "Split": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "Fine", "States": {"Fine": {"Type": "Pass", "End": True}}},
                {
                    "StartAt": "Boom",
                    "States": {
                        "Boom": {
                            "Type": "Task",
                            "Resource": f"{LAMBDA}Boom",
                            "Retry": [
                                {"ErrorEquals": ["ValueError"], "MaxAttempts": 1, "IntervalSeconds": 1}
                            ],
                            "End": True,
                        }
                    },
                },
            ],
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Handle"}],
            "Next": "Done",
        },
        "Handle": {"Type": "Pass", "Next": "GiveUp"},
        "GiveUp": {"Type": "Fail", "Error": "Broken", "Cause": "the branch broke"},
        "Done": {"Type": "Succeed"},
    },
}


def _statuses(svg: str) -> dict[str, str]:
    return dict(re.findall(r'data-state="([^"]+)" data-status="([^"]+)"', svg))


def _boom(event: Any, context: Any) -> Any:
    raise ValueError("no")


def test_every_state_of_a_nested_definition_is_a_node_named_by_its_state() -> None:
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemProcessor": {"StartAt": "Inner", "States": {"Inner": {"Type": "Pass", "End": True}}},
                "Next": "Split",
            },
            **CAUGHT_PARALLEL["States"],
        },
    }
    svg = render_svg(lay_out(definition))
    names = set(re.findall(r'data-state="([^"]+)"', svg))
    assert names == {"Each", "Inner", "Split", "Fine", "Boom", "Handle", "GiveUp", "Done"}
    assert "data-status" not in svg  # no execution: nothing is coloured
    assert svg.count('class="body"') == 3  # the Map's iterator and the Parallel's two branches


def test_catch_edges_are_drawn_dashed_and_choice_defaults_are_edges() -> None:
    svg = render_svg(lay_out(json.loads(DRAGONS.read_text())))
    catch_edges = re.findall(r'<path class="edge edge-catch[^"]*"[^>]*><title>([^<]+)</title>', svg)
    assert catch_edges == ["AddDragon to NotifyExists (catch)"]
    assert "DragonExists? to AddDragon (default)" in svg
    assert "DragonExists? to NotifyExists (choice)" in svg


def test_a_loop_is_drawn_and_names_are_escaped() -> None:
    definition = {
        "StartAt": "<Again>",
        "States": {
            "<Again>": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.n", "IsPresent": True, "Next": "<Again>"}],
                "Default": "End",
            },
            "End": {"Type": "Succeed"},
        },
    }
    svg = render_svg(lay_out(definition))
    assert 'data-state="&lt;Again&gt;"' in svg
    assert "<Again>" not in svg


@pytest.mark.parametrize("definition", [None, [], {"States": "no"}, {"StartAt": "A"}])
def test_a_malformed_definition_is_refused_with_a_reason(definition: Any) -> None:
    with pytest.raises(GraphError, match="no States"):
        lay_out(definition)


def test_a_definition_with_too_many_states_is_not_drawn() -> None:
    states = {f"S{i}": {"Type": "Pass", "Next": f"S{i + 1}"} for i in range(MAX_STATES + 1)}
    states[f"S{MAX_STATES + 1}"] = {"Type": "Succeed"}
    with pytest.raises(GraphError, match="too many"):
        lay_out({"StartAt": "S0", "States": states})


def test_a_caught_parallel_and_its_failed_branch_are_told_apart() -> None:
    result = LocalRunner(StateMachine.parse(CAUGHT_PARALLEL, "M"), {"Boom": _boom}).run({"x": 1})
    course = read_course(history_events(result.events), result.status)
    assert result.status == "FAILED"
    assert course.statuses() == {
        "Split": "caught",
        "Fine": "succeeded",
        "Boom": "failed",
        "Handle": "succeeded",
        "GiveUp": "failed",
    }
    assert course.runs["Boom"].retries == 1
    assert course.runs["Boom"].error == "ValueError"
    assert course.runs["Split"].error == "ValueError"
    assert course.runs["Handle"].input["error"]["Error"] == "ValueError"
    assert course.taken == {("Split", "Handle"), ("Handle", "GiveUp")}
    svg = render_svg(lay_out(CAUGHT_PARALLEL), course.statuses(), course.taken)
    assert _statuses(svg) == {**course.statuses(), "Done": "not-run"}
    assert svg.count("taken") == 2


def test_a_retried_task_that_then_succeeds_is_succeeded_not_caught() -> None:
    calls: list[int] = []

    def flaky(event: Any, context: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("once")
        return {"ok": True}

    definition = {
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": f"{LAMBDA}Flaky",
                "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2, "IntervalSeconds": 1}],
                "End": True,
            }
        },
    }
    result = LocalRunner(StateMachine.parse(definition, "M"), {"Flaky": flaky}).run({})
    course = read_course(history_events(result.events), result.status)
    assert course.runs["T"].status == "succeeded"
    assert course.runs["T"].retries == 1
    assert course.runs["T"].output == {"ok": True}


def test_a_state_still_waiting_in_a_running_execution_is_running() -> None:
    history = [
        {"id": 1, "previousEventId": 0, "timestamp": 1.0, "type": "ExecutionStarted", "input": {}},
        {
            "id": 2,
            "previousEventId": 1,
            "timestamp": 1.0,
            "type": "WaitStateEntered",
            "name": "W",
            "input": {},
        },
    ]
    assert read_course(history, "RUNNING").statuses() == {"W": "running"}
    assert read_course(history, "ABORTED").statuses() == {"W": "failed"}


def test_a_map_whose_iteration_failed_is_caught_and_its_iterator_state_failed() -> None:
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": {
                    "StartAt": "Inner",
                    "States": {
                        "Inner": {"Type": "Task", "Resource": f"{LAMBDA}Picky", "Next": "After"},
                        "After": {"Type": "Pass", "End": True},
                    },
                },
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Oops"}],
                "Next": "Done",
            },
            "Oops": {"Type": "Pass", "End": True},
            "Done": {"Type": "Succeed"},
        },
    }

    def picky(item: Any, context: Any) -> Any:
        if item == 3:
            raise ValueError("not three")
        return item

    runner = LocalRunner(StateMachine.parse(definition, "M"), {"Picky": picky})
    fine = runner.run({"items": [1, 2]})
    assert read_course(history_events(fine.events), fine.status).statuses() == {
        "Each": "succeeded",
        "Inner": "succeeded",
        "After": "succeeded",
        "Done": "succeeded",
    }
    caught = runner.run({"items": [1, 3, 2]})
    course = read_course(history_events(caught.events), caught.status)
    assert course.statuses() == {
        "Each": "caught",
        "Inner": "failed",
        "After": "succeeded",
        "Oops": "succeeded",
    }
    assert ("Each", "Oops") in course.taken


def test_a_state_that_failed_and_then_succeeded_after_a_redrive_shows_its_latest_visit() -> None:
    def event(event_id: int, previous: int, kind: str, **details: Any) -> dict[str, Any]:
        return {
            "id": event_id,
            "previousEventId": previous,
            "timestamp": float(event_id),
            "type": kind,
            **details,
        }

    history = [
        event(1, 0, "ExecutionStarted", input={}),
        event(2, 1, "TaskStateEntered", name="T", input={"try": 1}),
        event(3, 2, "LambdaFunctionScheduled"),
        event(4, 3, "LambdaFunctionFailed", error="Boom", cause="first try"),
        event(5, 4, "ExecutionFailed", error="Boom", cause="first try"),
        event(6, 5, "ExecutionRedriven", redriveCount=1),
        event(7, 6, "TaskStateEntered", name="T", input={"try": 2}),
        event(8, 7, "LambdaFunctionScheduled"),
        event(9, 8, "LambdaFunctionSucceeded", output={"ok": True}),
        event(10, 9, "TaskStateExited", name="T", output={"ok": True}),
        event(11, 10, "ExecutionSucceeded", output={"ok": True}),
    ]
    failed = read_course(history[:6], "FAILED")
    assert failed.statuses() == {"T": "failed"} and failed.runs["T"].error == "Boom"
    course = read_course(history, "SUCCEEDED")
    assert course.statuses() == {"T": "succeeded"}
    assert course.runs["T"].input == {"try": 2} and course.runs["T"].error is None
    assert course.runs["T"].visits == 2
