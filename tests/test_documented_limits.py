"""The limits AWS Step Functions enforces while an execution runs, as its Developer Guide words them.

Each test names the page it follows. They run on the local runner's virtual clock or one
call of the core at a time, so a year-long wait or a 25,000-event history costs no real time.
"""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.asl.definition import StateMachine
from orchestrator.asl.engine import redrive_execution, start_execution
from orchestrator.asl.errors import DefinitionError
from orchestrator.asl.fork_states import INLINE_MAP_CONCURRENCY
from orchestrator.asl.runner import HISTORY_LIMIT_CAUSE, MAX_EXECUTION_SECONDS, MAX_HISTORY_EVENTS
from orchestrator.local import LocalRunner

YEAR = 365 * 24 * 3600


def counting_loop(rounds: int) -> dict[str, Any]:
    """Init, then ``rounds`` times Check and Inc, then Check and Done: 4 * rounds + 8 events in all."""
    return {
        "StartAt": "Init",
        "States": {
            "Init": {"Type": "Pass", "Result": 0, "ResultPath": "$.i", "Next": "Check"},
            "Check": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.i", "NumericEquals": rounds, "Next": "Done"}],
                "Default": "Inc",
            },
            "Inc": {
                "Type": "Pass",
                "Parameters": {"i.$": "States.MathAdd($.i, 1)"},
                "Next": "Check",
            },
            "Done": {"Type": "Succeed"},
        },
    }


def run(definition: dict[str, Any], input: Any = None, functions: dict[str, Any] | None = None) -> Any:
    return LocalRunner(StateMachine.parse(definition, "Limits"), functions).run(
        {} if input is None else input, start=0.0
    )


# -- history length ----------------------------------------------------------------------------


def test_an_execution_whose_25000th_event_is_its_success_succeeds() -> None:
    """ "Avoid reaching the history quota" (Developer Guide, bp-history-limit.html): "If the event
    number 25,000 is ExecutionSucceeded, the execution finishes successfully"."""
    rounds = (MAX_HISTORY_EVENTS - 8) // 4
    result = run(counting_loop(rounds))

    assert result.status == "SUCCEEDED"
    assert len(result.history) == MAX_HISTORY_EVENTS == 25_000
    assert result.history[-1]["type"] == "ExecutionSucceeded"


def test_an_execution_that_would_go_past_25000_events_fails_with_event_25000() -> None:
    """Same page: "If the event number 25,000 isn't ExecutionSucceeded, the ExecutionFailed event
    is logged and the state machine execution fails because of reaching the history limit"."""
    result = run(counting_loop((MAX_HISTORY_EVENTS - 8) // 4 + 1))

    assert (result.status, result.error, result.cause) == ("FAILED", "States.Runtime", HISTORY_LIMIT_CAUSE)
    assert len(result.history) == MAX_HISTORY_EVENTS
    assert [event["id"] for event in result.history[-2:]] == [MAX_HISTORY_EVENTS - 1, MAX_HISTORY_EVENTS]
    assert result.history[-1]["type"] == "ExecutionFailed"


def test_a_loop_that_never_ends_stops_at_the_limit_without_going_over() -> None:
    result = run({"StartAt": "L", "States": {"L": {"Type": "Pass", "Next": "L"}}})

    assert (result.status, len(result.history)) == ("FAILED", MAX_HISTORY_EVENTS)


def test_an_execution_stopped_by_the_history_limit_cannot_be_redriven() -> None:
    """Its redrive's first event, ExecutionRedriven, would go past the 25,000 its history may hold."""
    machine = StateMachine.parse({"StartAt": "L", "States": {"L": {"Type": "Pass", "Next": "L"}}}, "Limits")
    stopped = start_execution(machine, "e", {}, 0.0)
    assert stopped.execution["status"] == "FAILED"

    with pytest.raises(ValueError, match="no room is left under the 25,000"):
        redrive_execution(machine, stopped.execution, 1.0)


# -- inline Map concurrency --------------------------------------------------------------------


def map_of_tasks(**fields: Any) -> dict[str, Any]:
    return {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemProcessor": {
                    "StartAt": "T",
                    "States": {"T": {"Type": "Task", "Resource": "f", "End": True}},
                },
                "End": True,
                **fields,
            }
        },
    }


@pytest.mark.parametrize(
    ("fields", "expected"),
    [({}, 40), ({"MaxConcurrency": 0}, 40), ({"MaxConcurrency": 1000}, 40), ({"MaxConcurrency": 5}, 5)],
)
def test_an_inline_map_starts_at_most_40_iterations_at_once(fields: dict[str, Any], expected: int) -> None:
    """ "Map workflow state" (Developer Guide, state-map.html): Inline mode "supports up to 40
    concurrent iterations"; MaxConcurrency 0 (the default) puts no limit of its own.

    One step of the core over 10,000 items schedules the first 40 tasks, not 10,000."""
    machine = StateMachine.parse(map_of_tasks(**fields), "Limits")
    step = start_execution(machine, "e", list(range(10_000)), 0.0)

    assert [action["type"] for action in step.actions].count("RunTask") == expected
    assert [event["type"] for event in step.history].count("MapIterationStarted") == expected
    assert INLINE_MAP_CONCURRENCY == 40


def test_an_inline_map_keeps_40_iterations_running_until_the_items_run_out() -> None:
    def takes_a_second(event: Any, context: Any) -> Any:
        return event * 2

    takes_a_second.virtual_duration_seconds = 1  # type: ignore[attr-defined]
    result = run(map_of_tasks(), list(range(100)), {"f": takes_a_second})

    running = peak = 0
    for event in result.history:
        running += {"MapIterationStarted": 1, "MapIterationSucceeded": -1}.get(event["type"], 0)
        peak = max(peak, running)
    assert result.output == [item * 2 for item in range(100)]
    assert peak == 40
    assert result.history[-1]["timestamp"] == 3.0  # 40, 40, then 20: three rounds of a second


# -- the longest wait --------------------------------------------------------------------------


def wait(**fields: Any) -> dict[str, Any]:
    return {
        "StartAt": "W",
        "States": {"W": {"Type": "Wait", "Next": "Done", **fields}, "Done": {"Type": "Succeed"}},
    }


def test_a_wait_of_one_year_ends_and_the_execution_goes_on() -> None:
    """ "Wait workflow state" (Developer Guide, state-wait.html): "the maximum wait time that you
    can specify for Standard Workflows ... is one year"."""
    result = run(wait(SecondsPath="$.s"), {"s": YEAR})

    assert result.status == "SUCCEEDED"
    assert result.history[-1]["timestamp"] == YEAR == MAX_EXECUTION_SECONDS


@pytest.mark.parametrize(
    "fields",
    [
        {"SecondsPath": "$.s"},
        {"Seconds": 2 * YEAR},
        {"TimestampPath": "$.t"},
        {"Timestamp": "1972-01-01T00:00:00Z"},
    ],
)
def test_a_wait_past_one_year_times_the_execution_out_at_one_year(fields: dict[str, Any]) -> None:
    """ "Quotas for Standard Workflows" (Developer Guide, limits.html): "Maximum execution time:
    1 year. If an execution runs for more than the 1-year maximum, it will fail with a
    States.Timeout error"; the wait does not hold it for longer."""
    result = run(wait(**fields), {"s": 2 * YEAR, "t": "1972-01-01T00:00:00Z"})

    assert result.status == "TIMED_OUT"
    assert result.history[-1]["type"] == "ExecutionTimedOut"
    assert result.history[-1]["timestamp"] == YEAR


def test_a_wait_past_one_year_in_a_map_times_the_execution_out_once() -> None:
    definition = {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemProcessor": {
                    "StartAt": "W",
                    "States": {"W": {"Type": "Wait", "SecondsPath": "$", "End": True}},
                },
                "End": True,
            }
        },
    }
    machine = StateMachine.parse(definition, "Limits")
    step = start_execution(machine, "e", [2 * YEAR, 3 * YEAR, 5], 0.0)

    timers = sorted(action["due"] for action in step.actions if action["type"] == "SetTimer")
    assert timers == [5.0, float(YEAR)]


@pytest.mark.parametrize(("field", "value"), [("Seconds", 100_000_000), ("TimeoutSeconds", 100_000_000)])
def test_a_literal_past_99999999_seconds_is_refused_with_the_definition(field: str, value: int) -> None:
    """state-wait.html: Seconds is "an integer value from 0 to 99999999"; so is a Task's
    TimeoutSeconds (state-task.html)."""
    state = {"Type": "Wait", "Seconds": 1} if field == "Seconds" else {"Type": "Task", "Resource": "f"}
    with pytest.raises(DefinitionError, match=f"/States/S/{field}: must be at most 99999999"):
        StateMachine.parse({"StartAt": "S", "States": {"S": {**state, field: value, "End": True}}}, "Limits")
