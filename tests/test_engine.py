"""The pure core: what one step decides, with no Redis and no clock of its own."""

from __future__ import annotations

from typing import Any

from orchestrator.asl.definition import StateMachine
from orchestrator.asl.engine import advance, start_execution
from orchestrator.local import LocalRunner

CALLBACK = {
    "StartAt": "T",
    "States": {
        "T": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "TimeoutSeconds": 60,
            "Parameters": {"FunctionName": "f", "Payload": {"token.$": "$$.Task.Token"}},
            "End": True,
        }
    },
}


def actions_of(step: Any, kind: str) -> list[dict[str, Any]]:
    return [action for action in step.actions if action["type"] == kind]


def test_a_report_naming_a_timers_token_does_not_fire_the_timer() -> None:
    machine = StateMachine.parse(CALLBACK, "M")
    step = start_execution(machine, "e", {}, 0.0)
    timer = actions_of(step, "SetTimer")[0]["token"]
    after = advance(machine, step.execution, {"type": "TaskSucceeded", "token": timer, "output": {}}, 1.0)
    assert after.execution["status"] == "RUNNING"
    assert after.history == [] and after.actions == []


def test_the_callback_token_completes_the_task_and_the_function_result_does_not() -> None:
    machine = StateMachine.parse(CALLBACK, "M")
    step = start_execution(machine, "e", {}, 0.0)
    run_task = actions_of(step, "RunTask")[0]
    callback_token = run_task["payload"]["token"]
    ignored = advance(
        machine, step.execution, {"type": "TaskSucceeded", "token": run_task["token"], "output": 1}, 1.0
    )
    assert ignored.execution["status"] == "RUNNING"
    done = advance(
        machine, step.execution, {"type": "TaskSucceeded", "token": callback_token, "output": {"ok": 1}}, 2.0
    )
    assert done.execution["status"] == "SUCCEEDED"
    assert done.execution["output"] == {"ok": 1}


def test_a_late_result_from_a_timed_out_attempt_changes_nothing() -> None:
    definition = {
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": "f",
                "TimeoutSeconds": 5,
                "Retry": [{"ErrorEquals": ["States.Timeout"], "IntervalSeconds": 1, "MaxAttempts": 1}],
                "End": True,
            }
        },
    }
    machine = StateMachine.parse(definition, "M")
    step = start_execution(machine, "e", {}, 0.0)
    first_attempt = actions_of(step, "RunTask")[0]["token"]
    timeout = actions_of(step, "SetTimer")[0]
    retrying = advance(
        machine, step.execution, {"type": "TimerFired", "token": timeout["token"]}, timeout["due"]
    )
    backoff = actions_of(retrying, "SetTimer")[0]
    assert backoff["due"] == timeout["due"] + 1
    second = advance(
        machine, step.execution, {"type": "TimerFired", "token": backoff["token"]}, backoff["due"]
    )
    second_attempt = actions_of(second, "RunTask")[0]
    assert second_attempt["attempt"] == 2
    late = advance(
        machine, step.execution, {"type": "TaskSucceeded", "token": first_attempt, "output": "late"}, 9.0
    )
    assert late.history == [] and step.execution["status"] == "RUNNING"
    done = advance(
        machine, step.execution, {"type": "TaskSucceeded", "token": second_attempt["token"], "output": 2}, 9.5
    )
    assert done.execution["status"] == "SUCCEEDED" and done.execution["output"] == 2


def test_parallel_branches_schedule_their_tasks_in_one_step() -> None:
    branch = {"StartAt": "Work", "States": {"Work": {"Type": "Task", "Resource": "f", "End": True}}}
    machine = StateMachine.parse(
        {"StartAt": "P", "States": {"P": {"Type": "Parallel", "Branches": [branch, branch], "End": True}}},
        "M",
    )
    step = start_execution(machine, "e", {"n": 1}, 0.0)
    tasks = actions_of(step, "RunTask")
    assert len(tasks) == 2
    advance(
        machine,
        step.execution,
        {"type": "TaskSucceeded", "token": tasks[1]["token"], "output": "second"},
        1.0,
    )
    done = advance(
        machine, step.execution, {"type": "TaskSucceeded", "token": tasks[0]["token"], "output": "first"}, 2.0
    )
    assert done.execution["output"] == ["first", "second"]


def test_the_execution_timeout_ends_it_timed_out() -> None:
    definition = {
        "TimeoutSeconds": 10,
        "StartAt": "W",
        "States": {"W": {"Type": "Wait", "Seconds": 60, "End": True}},
    }
    machine = StateMachine.parse(definition, "M")
    step = start_execution(machine, "e", {}, 0.0)
    deadline = min(actions_of(step, "SetTimer"), key=lambda action: action["due"])
    assert deadline["due"] == 10
    done = advance(machine, step.execution, {"type": "TimerFired", "token": deadline["token"]}, 10.0)
    assert done.execution["status"] == "TIMED_OUT"
    assert done.history[-1]["type"] == "ExecutionTimedOut"
    assert actions_of(done, "ExecutionFinished") == [{"type": "ExecutionFinished", "status": "TIMED_OUT"}]


def test_an_execution_is_plain_json_that_survives_a_round_trip() -> None:
    import json

    machine = StateMachine.parse(CALLBACK, "M")
    step = start_execution(machine, "e", {"a": [1, 2]}, 0.0)
    assert json.loads(json.dumps(step.execution)) == step.execution
    assert all(json.loads(json.dumps(event)) == event for event in step.history)


def test_a_failed_execution_redrives_from_the_state_that_failed_with_its_input() -> None:
    import pytest

    from orchestrator.asl.engine import redrive_execution

    definition = {
        "StartAt": "First",
        "States": {
            "First": {"Type": "Task", "Resource": "first", "Next": "Second"},
            "Second": {"Type": "Task", "Resource": "second", "End": True},
        },
    }
    machine = StateMachine.parse(definition, "M")
    step = start_execution(machine, "e", {"n": 1}, 0.0)
    first = actions_of(step, "RunTask")[0]
    step = advance(
        machine, step.execution, {"type": "TaskSucceeded", "token": first["token"], "output": {"n": 2}}, 1.0
    )
    second = actions_of(step, "RunTask")[0]
    failed = advance(
        machine, step.execution, {"type": "TaskFailed", "token": second["token"], "error": "Boom"}, 2.0
    )
    assert failed.execution["status"] == "FAILED"

    redriven = redrive_execution(machine, failed.execution, 3.0)
    assert [e["type"] for e in redriven.history][:2] == ["ExecutionRedriven", "TaskStateEntered"]
    again = actions_of(redriven, "RunTask")[0]
    assert (again["function"], again["payload"]) == ("second", {"n": 2})
    done = advance(
        machine, redriven.execution, {"type": "TaskSucceeded", "token": again["token"], "output": 3}, 4.0
    )
    assert done.execution["status"] == "SUCCEEDED" and done.execution["redriveCount"] == 1
    with pytest.raises(ValueError, match="SUCCEEDED"):
        redrive_execution(machine, done.execution, 5.0)


def test_a_timer_is_cancelled_when_what_it_guarded_ends_first_and_not_when_it_fires() -> None:
    definition = {
        "TimeoutSeconds": 600,
        "StartAt": "T",
        "States": {
            "T": {"Type": "Task", "Resource": "f", "TimeoutSeconds": 60, "Next": "W"},
            "W": {"Type": "Wait", "Seconds": 10, "End": True},
        },
    }
    machine = StateMachine.parse(definition, "M")
    step = start_execution(machine, "e", {}, 0.0)
    execution_timeout, task_timeout = (action["token"] for action in actions_of(step, "SetTimer"))
    task = actions_of(step, "RunTask")[0]["token"]

    reported = advance(machine, step.execution, {"type": "TaskSucceeded", "token": task, "output": {}}, 1.0)
    assert [a["token"] for a in actions_of(reported, "CancelTimer")] == [task_timeout]
    (wait,) = (action["token"] for action in actions_of(reported, "SetTimer"))

    ended = advance(machine, step.execution, {"type": "TimerFired", "token": wait}, 11.0)
    assert ended.execution["status"] == "SUCCEEDED"
    # The wait's own timer fired; the execution's is taken back as it ends.
    assert [a["token"] for a in actions_of(ended, "CancelTimer")] == [execution_timeout]


def test_a_worker_run_task_is_timed_by_heartbeat_from_its_first_heartbeat_and_a_callback_at_once() -> None:
    task = {"Type": "Task", "Resource": "f", "HeartbeatSeconds": 5, "End": True}
    machine = StateMachine.parse({"StartAt": "T", "States": {"T": task}}, "M")
    step = start_execution(machine, "e", {}, 0.0)
    # Queued behind other tasks, it is not late: no heartbeat clock runs yet.
    assert actions_of(step, "SetTimer") == []
    run_task = actions_of(step, "RunTask")[0]
    assert run_task["heartbeat_seconds"] == 5

    started = advance(machine, step.execution, {"type": "TaskHeartbeat", "token": run_task["token"]}, 30.0)
    assert [action["due"] for action in actions_of(started, "SetTimer")] == [35.0]

    beating = CALLBACK["States"]["T"] | {"HeartbeatSeconds": 5}
    callback = StateMachine.parse(CALLBACK | {"States": {"T": beating}})
    waiting = start_execution(callback, "c", {}, 0.0)
    assert sorted(action["due"] for action in actions_of(waiting, "SetTimer")) == [5.0, 60.0]


def test_a_local_function_slower_than_its_heartbeat_succeeds_as_under_a_live_worker() -> None:
    def slow(event: Any, context: Any) -> str:
        return "done"

    slow.virtual_duration_seconds = 60  # type: ignore[attr-defined]
    task = {"Type": "Task", "Resource": "slow", "HeartbeatSeconds": 5, "End": True}
    runner = LocalRunner(StateMachine.parse({"StartAt": "T", "States": {"T": task}}, "M"), {"slow": slow})

    result = runner.run({}, start=0.0)

    assert (result.status, result.output) == ("SUCCEEDED", "done")
    assert result.history[-1]["timestamp"] == 60.0
