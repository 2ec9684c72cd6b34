"""Workflow variables set by Assign are held to AWS's documented limits.

"Passing data between states with variables" (Developer Guide,
https://docs.aws.amazon.com/step-functions/latest/dg/workflow-variables.html#limits):
"The maximum size of a single variable is 256Kib, for both Standard and Express workflows.
The maximum combined size for all variables in a single Assign field is also 256Kib. For
example, you could assign X and Y to 128KiB, but you could not assign both X and Y to 256KiB
in the same Assign field. The total size of all stored variables cannot exceed 10MiB per
execution."

The page names no error. An Assign over a limit fails with States.DataLimitExceeded, the
error "Handling errors in Step Functions workflows" (Developer Guide,
https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html) names for
data over a size quota: "a terminal error which cannot be caught by the States.ALL error
type", which a Catch or Retry that names it still handles. Sizes are bytes of compact UTF-8
JSON, as for the 256 KiB payload limit (tests/test_documented_data_limits.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.runtime.server import RedisServer
from tests.conformance.stack import Stack, run_to_end, running_stack, stack_settings
from tests.local_runs import outcome, run, types

THIS_FILE = Path(__file__).resolve()
ERROR = "States.DataLimitExceeded"
LIMIT = 256 * 1024
QUARTER = "a" * (LIMIT // 4)  # the input carries a quarter; Assign makes the variable of it
# A string variable of 3 quarters and the tail: ``tail`` characters of "b" after 196,608 of "a".
SPELLED = "States.Format('{}{}{}{}', $.q, $.q, $.q, $.tail)"
HALF = "States.Format('{}{}', $.q, $.q)"  # a string of 128 KiB of characters
END = {"Type": "Pass", "End": True}


def variable_cause(name: str, state: str) -> str:
    return (
        f"The variable '{name}' assigned by the state '{state}' has a size exceeding the maximum "
        "number of bytes service limit (262144)."
    )


def sized(json_bytes: int) -> dict[str, Any]:
    """An input from which SPELLED makes a string whose JSON (quotes and all) is ``json_bytes`` long."""
    return {"q": QUARTER, "tail": "b" * (json_bytes - 2 - 3 * len(QUARTER))}


def json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


# -- one variable ------------------------------------------------------------------------------


def test_a_variable_of_exactly_256_kib_is_assigned_and_read_by_the_next_state() -> None:
    """Workflow-variables page: "The maximum size of a single variable is 256Kib"."""
    states = {
        "S": {"Type": "Pass", "Assign": {"x.$": SPELLED}, "ResultPath": None, "Next": "Read"},
        "Read": {"Type": "Pass", "QueryLanguage": "JSONata", "Output": "{% $length($x) %}", "End": True},
    }
    result = run(states, sized(LIMIT))

    assert result.status == "SUCCEEDED", result.cause
    assert result.output == LIMIT - 2  # its characters, within the quotes


def test_a_variable_one_byte_over_256_kib_fails_the_state_that_assigns_it() -> None:
    """Workflow-variables page: one variable over 256 KiB; the state is entered, never exited."""
    states = {"S": {"Type": "Pass", "Assign": {"x.$": SPELLED}, "ResultPath": None, "Next": "E"}, "E": END}
    result = run(states, sized(LIMIT + 1))

    assert outcome(result) == ("FAILED", ERROR, variable_cause("x", "S"))
    assert types(result) == ["ExecutionStarted", "PassStateEntered", "ExecutionFailed"]


def test_a_multibyte_variable_is_measured_in_utf8_bytes() -> None:
    """Workflow-variables page with the payload limit's measure: 256 KiB of UTF-8 JSON. 87,382
    three-byte characters fit in characters but not in bytes."""
    half = "\u20ac" * 43_691
    state = {
        "Type": "Pass",
        "Assign": {"euros.$": "States.Format('{}{}', $.t, $.t)"},
        "ResultPath": None,
        "End": True,
    }
    result = run({"S": state}, {"t": half})

    assert len(half * 2) < LIMIT < json_size(half * 2)
    assert outcome(result) == ("FAILED", ERROR, variable_cause("euros", "S"))


def test_a_jsonata_assign_over_the_limit_fails_the_same_way() -> None:
    """Workflow-variables page: the limits hold for Assign in either query language."""
    state = {
        "Type": "Pass",
        "QueryLanguage": "JSONata",
        "Assign": {"big": "{% $states.input.q & $states.input.q & $states.input.q & $states.input.tail %}"},
        "End": True,
    }
    result = run({"S": state}, sized(LIMIT + 1))

    assert outcome(result) == ("FAILED", ERROR, variable_cause("big", "S"))


# -- one Assign ----------------------------------------------------------------------------------


def test_two_variables_of_128_kib_each_fit_in_one_assign() -> None:
    """Workflow-variables page: "you could assign X and Y to 128KiB"."""
    half = {"x.$": "States.Format('{}{}', $.q, $.t)", "y.$": "States.Format('{}{}', $.q, $.t)"}
    input = {"q": QUARTER, "t": "c" * (LIMIT // 2 - 2 - len(QUARTER))}
    result = run({"S": {"Type": "Pass", "Assign": half, "ResultPath": None, "End": True}}, input)

    assert result.status == "SUCCEEDED", result.cause


def test_an_assign_whose_variables_together_pass_256_kib_fails_though_each_fits() -> None:
    """Workflow-variables page: "The maximum combined size for all variables in a single Assign
    field is also 256Kib"; the same two variables assigned by two states fit."""
    pair = {"x.$": "States.Format('{}{}', $.q, $.q)", "y.$": "States.Format('{}{}', $.q, $.q)"}
    input = {"q": QUARTER}
    together = run({"S": {"Type": "Pass", "Assign": pair, "ResultPath": None, "End": True}}, input)
    apart = run(
        {
            "S": {"Type": "Pass", "Assign": {"x.$": pair["x.$"]}, "ResultPath": None, "Next": "T"},
            "T": {"Type": "Pass", "Assign": {"y.$": pair["y.$"]}, "ResultPath": None, "End": True},
        },
        input,
    )

    assert outcome(together) == (
        "FAILED",
        ERROR,
        "The variables assigned by the state 'S' have a combined size exceeding the maximum number "
        "of bytes service limit (262144).",
    )
    assert apart.status == "SUCCEEDED", apart.cause


# -- one execution -------------------------------------------------------------------------------

THREE_QUARTERS = {"Type": "Pass", "ResultPath": None}  # each assigns a variable of 196,610 bytes


def chain(count: int, *, same_name: bool = False) -> dict[str, Any]:
    states: dict[str, Any] = {}
    for index in range(count):
        name = "v" if same_name else f"v{index}"
        state = THREE_QUARTERS | {"Assign": {f"{name}.$": "States.Format('{}{}{}', $.q, $.q, $.q)"}}
        states[f"S{index}"] = state | ({"Next": f"S{index + 1}"} if index + 1 < count else {"End": True})
    return states


def test_the_execution_may_hold_10_mib_of_variables_but_not_more() -> None:
    """Workflow-variables page: "The total size of all stored variables cannot exceed 10MiB per
    execution". 53 variables of 196,610 bytes are 10,420,330 bytes; a 54th passes 10,485,760."""
    fits = run(chain(53), {"q": QUARTER}, start="S0")
    over = run(chain(54), {"q": QUARTER}, start="S0")

    assert fits.status == "SUCCEEDED", fits.cause
    assert outcome(over) == (
        "FAILED",
        ERROR,
        "The variables assigned by the state 'S53' bring the total size of the execution's variables "
        "over the maximum number of bytes service limit (10485760).",
    )


def test_assigning_one_variable_again_and_again_stores_only_its_last_value() -> None:
    """Workflow-variables page: the total is of the variables stored; a value replaced is gone."""
    result = run(chain(60, same_name=True), {"q": QUARTER}, start="S0")

    assert result.status == "SUCCEEDED", result.cause


# -- Catch and Retry -----------------------------------------------------------------------------


def echo(event: Any, context: Any) -> Any:
    return event


TASK = {"Type": "Task", "Resource": "echo", "Assign": {"x.$": SPELLED}, "ResultPath": None, "End": True}


def test_a_catch_on_states_all_does_not_catch_a_variable_over_the_limit() -> None:
    """Error-handling page: States.ALL "cannot catch the States.DataLimitExceeded terminal
    error"; nor does States.TaskFailed. The task ran; its Assign failed the state."""
    for wildcard in ("States.ALL", "States.TaskFailed"):
        state = TASK | {"Catch": [{"ErrorEquals": [wildcard], "Next": "Caught"}]}
        result = run({"S": state, "Caught": END}, sized(LIMIT + 1), {"echo": echo})

        assert outcome(result) == ("FAILED", ERROR, variable_cause("x", "S")), wildcard
        assert types(result)[-2:] == ["LambdaFunctionSucceeded", "ExecutionFailed"]


def test_a_catch_that_names_data_limit_exceeded_catches_a_variable_over_the_limit() -> None:
    """Error-handling page: a catcher that names the terminal error handles it; the variable
    is not set, and the catcher's ResultPath carries the error."""
    state = TASK | {"Catch": [{"ErrorEquals": [ERROR], "ResultPath": "$.error", "Next": "Caught"}]}
    caught = {"Type": "Pass", "Parameters": {"error.$": "$.error.Error"}, "End": True}
    result = run({"S": state, "Caught": caught}, sized(LIMIT + 1), {"echo": echo})

    assert result.status == "SUCCEEDED", result.cause
    assert result.output == {"error": ERROR}
    assert "TaskStateExited" in types(result)


def test_a_retry_on_states_all_does_not_retry_it_but_one_that_names_it_does() -> None:
    """Error-handling page: States.ALL does not match the terminal error in a Retry either; a
    retrier that names it runs the task again, which assigns too much again."""
    calls: list[Any] = []

    def counted(event: Any, context: Any) -> Any:
        calls.append(event)
        return event

    for error_equals, attempts in ((["States.ALL"], 1), ([ERROR], 3)):
        calls.clear()
        retry = [{"ErrorEquals": error_equals, "IntervalSeconds": 1, "MaxAttempts": 2}]
        state = TASK | {"Resource": "counted", "Retry": retry}
        result = run({"S": state}, sized(LIMIT + 1), {"counted": counted})

        assert outcome(result) == ("FAILED", ERROR, variable_cause("x", "S"))
        assert len(calls) == attempts, error_equals


def test_a_catchers_own_assign_over_the_limit_fails_the_execution() -> None:
    """Workflow-variables page: an Assign in a Catch is held to the same limits; the state has
    already failed, so nothing is left to catch its error."""

    def fails(event: Any, context: Any) -> Any:
        raise ValueError("no")

    state = {
        "Type": "Task",
        "Resource": "fails",
        "Catch": [{"ErrorEquals": ["States.ALL"], "Assign": {"x.$": SPELLED}, "Next": "Caught"}],
        "End": True,
    }
    result = run({"S": state, "Caught": END}, sized(LIMIT + 1), {"fails": fails})

    assert outcome(result) == ("FAILED", ERROR, variable_cause("x", "S"))
    assert "PassStateEntered" not in types(result)


# -- Parallel and Map ----------------------------------------------------------------------------


def test_a_parallel_whose_assign_passes_the_limit_fails_and_states_all_does_not_catch_it() -> None:
    """Workflow-variables page: the limit on one variable, for the Assign of a Parallel (whose
    ``$`` is the branches' results, 131 KB here, twice over in the variable); error-handling
    page: States.ALL does not catch it."""
    state = {
        "Type": "Parallel",
        "Branches": [
            {"StartAt": "B", "States": {"B": {"Type": "Pass", "Parameters": {"s.$": HALF}, "End": True}}}
        ],
        "Assign": {"twice.$": "States.Array($, $)"},
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
        "ResultPath": None,
        "End": True,
    }
    result = run({"S": state, "Caught": END}, {"q": QUARTER})

    assert outcome(result) == ("FAILED", ERROR, variable_cause("twice", "S"))
    assert types(result)[-2:] == ["ParallelStateFailed", "ExecutionFailed"]


def test_a_map_iteration_is_held_to_the_limit_on_one_variable() -> None:
    """Workflow-variables page: a Map iteration's own variables are held to the limits too;
    the iteration fails, and the Map with it."""
    item = {"Type": "Pass", "Assign": {"x.$": SPELLED}, "ResultPath": None, "End": True}
    state = {
        "Type": "Map",
        "ItemsPath": "$.items",
        "ItemSelector": {"q.$": "$.q", "tail.$": "$.tail"},
        "ItemProcessor": {"StartAt": "I", "States": {"I": item}},
        "ResultPath": None,
        "End": True,
    }
    result = run({"S": state}, sized(LIMIT + 1) | {"items": [1]})

    assert outcome(result) == ("FAILED", ERROR, variable_cause("x", "I"))
    assert "MapIterationFailed" in types(result)


# -- the stack -----------------------------------------------------------------------------------

OVER_ON_THE_STACK = {
    "StartAt": "S",
    "States": {"S": {"Type": "Pass", "Assign": {"x.$": SPELLED}, "ResultPath": None, "End": True}},
}


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An orchestrator and one worker process."""
    settings, env = stack_settings(redis_server.url, "assignlimits")
    with running_stack(settings, env, [THIS_FILE], tmp_path_factory.mktemp("workers"), workers=1) as running:
        yield running


@pytest.mark.stack
def test_a_variable_over_the_limit_fails_on_the_stack_as_in_the_local_runner(stack: Stack) -> None:
    """Workflow-variables page: one variable over 256 KiB, on a real orchestrator."""
    described, history = run_to_end(stack, OVER_ON_THE_STACK, sized(LIMIT + 1), "assignlimits")

    assert (described["status"], described["error"], described["cause"]) == (
        "FAILED",
        ERROR,
        variable_cause("x", "S"),
    )
    assert history == ["ExecutionStarted", "PassStateEntered", "ExecutionFailed"]
