"""Every state's input and output is held to AWS's 256 KiB payload limit.

"Step Functions service quotas" (Developer Guide,
https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html): "Maximum input or
output size for a task, state, or execution: 256 KiB of data as a UTF-8 encoded string".
"Handling errors in Step Functions workflows" (Developer Guide,
https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html) reports
States.DataLimitExceeded when "the output of a connector is larger than payload size quota",
"the output of a state is larger than payload size quota" or, "after Parameters processing,
the input of a state is larger than the payload size quota", and calls it "a terminal error
that can't be caught by the States.ALL error type" ("The States.ALL error type ... can't
catch the States.DataLimitExceeded terminal error or Runtime error types").

AWS's recorded executions (../shared/conformance, test_states_errors) add what the page does
not say: the cause is "The state/task '<state>' returned a result with a size exceeding the
maximum number of bytes service limit.", a Pass state's history ends PassStateEntered,
ExecutionFailed, and a task's own result over the limit is the one case States.ALL catches.

The core decides all of this, so the local runner and the stack give the same answers; the
stack test at the end runs a Pass state whose Result is over the limit through a real
orchestrator.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.asl.definition import StateMachine
from orchestrator.asl.json_values import NO_BOUND, PAYLOAD_LIMIT_BYTES, payload_bound
from orchestrator.local import LocalRunner
from orchestrator.runtime.server import RedisServer
from tests.conformance.stack import Stack, run_to_end, running_stack, stack_settings
from tests.local_runs import outcome, run, types

THIS_FILE = Path(__file__).resolve()
ERROR = "States.DataLimitExceeded"
# A string that fits alone, but not twice over: 150,000 bytes.
HALF = "x" * 150_000
BIG_INPUT = {"s": HALF}


def cause(source: str) -> str:
    return (
        f"The state/task '{source}' returned a result with a size exceeding the maximum number of bytes "
        "service limit."
    )


def half(event: Any, context: Any) -> Any:
    return {"t": HALF}


def huge(event: Any, context: Any) -> Any:
    return "a" * (257 * 1024)


END = {"Type": "Pass", "End": True}
DOUBLES = {"s.$": "States.Format('{}{}', $.s, $.s)"}  # twice its input's string


# -- Pass, Choice, Wait, Succeed --------------------------------------------------------------


def test_a_pass_state_whose_result_is_over_the_limit_fails_the_execution_as_aws_recorded() -> None:
    """Service quotas and error-handling pages (module docstring); AWS's recorded execution
    test_states_errors::test_start_large_input: PassStateEntered, then ExecutionFailed."""
    result = run({"S": {"Type": "Pass", "Result": {"Arg1": "a" * (257 * 1024)}, "End": True}}, {})

    assert outcome(result) == ("FAILED", ERROR, cause("S"))
    assert types(result) == ["ExecutionStarted", "PassStateEntered", "ExecutionFailed"]


def test_a_pass_state_whose_parameters_pass_the_limit_fails() -> None:
    """Error-handling page: "After Parameters processing, the input of a state is larger than
    the payload size quota" reports States.DataLimitExceeded."""
    result = run({"S": {"Type": "Pass", "Parameters": DOUBLES, "ResultPath": None, "End": True}}, BIG_INPUT)

    assert outcome(result) == ("FAILED", ERROR, cause("S"))
    assert types(result) == ["ExecutionStarted", "PassStateEntered", "ExecutionFailed"]


def test_a_pass_state_whose_result_path_makes_its_output_too_big_fails() -> None:
    """Error-handling page: "The output of a state is larger than payload size quota"; the
    input and the result fit, the output that ResultPath makes of both does not."""
    state = {"Type": "Pass", "Parameters": {"copy.$": "$.s"}, "ResultPath": "$.copy", "End": True}

    assert outcome(run({"S": state}, BIG_INPUT)) == ("FAILED", ERROR, cause("S"))


def test_a_choice_passes_a_big_input_through_but_not_a_jsonata_output_over_the_limit() -> None:
    """Error-handling page: the output of a state over the quota; a Choice's output is its
    input (or part of it), which already fit, unless a JSONata Output makes more."""
    passing = {
        "S": {"Type": "Choice", "Choices": [{"Variable": "$.s", "IsPresent": True, "Next": "E"}]},
        "E": END,
    }
    assert run(passing, BIG_INPUT).status == "SUCCEEDED"

    doubling = {
        "S": {
            "Type": "Choice",
            "QueryLanguage": "JSONata",
            "Choices": [
                {"Condition": "{% true %}", "Next": "E", "Output": "{% [$states.input, $states.input] %}"}
            ],
        },
        "E": END,
    }
    result = run(doubling, BIG_INPUT)
    assert outcome(result) == ("FAILED", ERROR, cause("S"))
    assert types(result) == ["ExecutionStarted", "ChoiceStateEntered", "ExecutionFailed"]


@pytest.mark.parametrize(
    "state",
    [
        {"Type": "Wait", "Seconds": 1, "End": True},
        {"Type": "Succeed"},
        {"Type": "Pass", "End": True},
    ],
    ids=["Wait", "Succeed", "Pass"],
)
def test_a_state_whose_jsonata_output_passes_the_limit_fails(state: dict[str, Any]) -> None:
    """Error-handling page: "The output of a state is larger than payload size quota"."""
    state = state | {"QueryLanguage": "JSONata", "Output": "{% [$states.input, $states.input] %}"}
    result = run({"S": state}, BIG_INPUT)

    assert outcome(result) == ("FAILED", ERROR, cause("S"))
    assert "ExecutionSucceeded" not in types(result)


def test_states_that_pass_a_big_input_on_as_it_is_succeed() -> None:
    """Service quotas page: the limit is on each state's data; an input that fit, passed on
    unchanged by Pass, Wait and Succeed, still fits."""
    states = {
        "S": {"Type": "Pass", "Next": "W"},
        "W": {"Type": "Wait", "Seconds": 5, "Next": "D"},
        "D": {"Type": "Succeed"},
    }
    result = run(states, BIG_INPUT)

    assert result.status == "SUCCEEDED"
    assert result.output == BIG_INPUT


# -- Task --------------------------------------------------------------------------------------

TASK_MERGE = {"Type": "Task", "Resource": "half", "ResultPath": "$.r", "End": True}


def test_a_task_whose_result_path_output_is_over_the_limit_fails_after_its_task_succeeded() -> None:
    """Error-handling page: the output of a state over the quota. The function's result fits
    (TaskSucceeded), the state's output does not: no TaskStateExited, the execution fails."""
    result = run({"S": TASK_MERGE}, BIG_INPUT, {"half": half})

    assert outcome(result) == ("FAILED", ERROR, cause("S"))
    assert types(result) == [
        "ExecutionStarted",
        "TaskStateEntered",
        "LambdaFunctionScheduled",
        "LambdaFunctionStarted",
        "LambdaFunctionSucceeded",
        "ExecutionFailed",
    ]


def test_a_task_whose_parameters_pass_the_limit_fails_before_anything_runs() -> None:
    """Error-handling page: "After Parameters processing, the input of a state is larger
    than the payload size quota"; the task is never scheduled, the function never called."""
    calls: list[Any] = []

    def spy(event: Any, context: Any) -> Any:
        calls.append(event)
        return event

    state = {"Type": "Task", "Resource": "spy", "Parameters": DOUBLES, "End": True}
    result = run({"S": state}, BIG_INPUT, {"spy": spy})

    assert outcome(result) == ("FAILED", ERROR, cause("S"))
    assert types(result) == ["ExecutionStarted", "TaskStateEntered", "ExecutionFailed"]
    assert calls == []


def test_the_execution_output_is_never_over_the_limit() -> None:
    """Service quotas page: "Maximum input or output size for a task, state, or execution";
    the last state's output is the execution's, so an End state over it fails the execution."""
    result = run({"S": TASK_MERGE}, BIG_INPUT, {"half": half})

    assert result.status == "FAILED"
    assert result.output is None


def test_an_output_of_exactly_262144_bytes_fits_and_one_byte_more_does_not() -> None:
    """Service quotas page: 256 KiB "as a UTF-8 encoded string"; the limit is 262,144 bytes."""
    input_text = "x" * 131_000

    def result_of(size: int) -> Callable[[Any, Any], Any]:
        return lambda event, context: {"t": "y" * size}

    shell = len(json.dumps({"s": "", "r": {"t": ""}}, separators=(",", ":")))
    fitting = PAYLOAD_LIMIT_BYTES - shell - len(input_text)
    fits = run({"S": TASK_MERGE}, {"s": input_text}, {"half": result_of(fitting)})
    over = run({"S": TASK_MERGE}, {"s": input_text}, {"half": result_of(fitting + 1)})

    assert fits.status == "SUCCEEDED"
    assert len(json.dumps(fits.output, separators=(",", ":")).encode()) == PAYLOAD_LIMIT_BYTES
    assert outcome(over) == ("FAILED", ERROR, cause("S"))


def test_a_catch_on_states_all_does_not_catch_a_state_output_over_the_limit() -> None:
    """Error-handling page: States.ALL "can't catch the States.DataLimitExceeded terminal
    error", "a terminal error that can't be caught by the States.ALL error type"; nor does
    States.TaskFailed, the other wildcard."""
    for wildcard in ("States.ALL", "States.TaskFailed"):
        state = TASK_MERGE | {"Catch": [{"ErrorEquals": [wildcard], "Next": "Caught"}]}
        result = run({"S": state, "Caught": END}, BIG_INPUT, {"half": half})

        assert outcome(result) == ("FAILED", ERROR, cause("S")), wildcard
        assert "PassStateEntered" not in types(result)


def test_a_catch_that_names_data_limit_exceeded_catches_it() -> None:
    """Error-handling page: only States.ALL is kept from the terminal error; a catcher that
    names States.DataLimitExceeded (AWS's recorded executions catch it so) handles it."""
    state = TASK_MERGE | {"Catch": [{"ErrorEquals": [ERROR], "ResultPath": "$.error", "Next": "Caught"}]}
    result = run({"S": state, "Caught": END}, BIG_INPUT, {"half": half})

    assert result.status == "SUCCEEDED"
    assert result.output == {"s": HALF, "error": {"Error": ERROR, "Cause": cause("S")}}
    assert types(result)[-4:] == [
        "TaskStateExited",
        "PassStateEntered",
        "PassStateExited",
        "ExecutionSucceeded",
    ]


def test_a_retry_on_states_all_does_not_retry_the_terminal_error_but_one_that_names_it_does() -> None:
    """Error-handling page: States.ALL does not match the terminal error, in a Retry as in a
    Catch; a retrier that names it matches it as any named error."""
    calls: list[Any] = []

    def counted(event: Any, context: Any) -> Any:
        calls.append(event)
        return {"t": HALF}

    for error_equals, attempts in ((["States.ALL"], 1), ([ERROR], 3)):
        calls.clear()
        retry = [{"ErrorEquals": error_equals, "IntervalSeconds": 1, "MaxAttempts": 2}]
        state = TASK_MERGE | {"Resource": "counted", "Retry": retry}
        result = run({"S": state}, BIG_INPUT, {"counted": counted})

        assert outcome(result) == ("FAILED", ERROR, cause("S"))
        assert len(calls) == attempts, error_equals


def test_a_task_result_over_the_limit_is_caught_by_states_all_as_aws_recorded() -> None:
    """AWS's recorded execution test_states_errors::test_task_lambda_catch_state_all_data_limit_
    exceeded_on_large_utf8_response (../shared/conformance): the connector's output over the
    quota (error-handling page) fails the task, LambdaFunctionFailed, and States.ALL catches it."""
    state = {
        "Type": "Task",
        "Resource": "huge",
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
        "End": True,
    }
    result = run({"S": state, "Caught": END}, {}, {"huge": huge})

    assert result.status == "SUCCEEDED"
    assert result.output == {"Error": ERROR, "Cause": cause("lambda:huge")}
    assert types(result)[2:6] == [
        "LambdaFunctionScheduled",
        "LambdaFunctionStarted",
        "LambdaFunctionFailed",
        "TaskStateExited",
    ]


# -- Parallel and Map -------------------------------------------------------------------------


def test_a_parallel_whose_parameters_pass_the_limit_fails_and_states_all_does_not_catch_it() -> None:
    """Error-handling page: the input of a state after Parameters over the quota, a terminal
    error States.ALL cannot catch; no branch starts."""
    state = {
        "Type": "Parallel",
        "Parameters": DOUBLES,
        "Branches": [{"StartAt": "B", "States": {"B": END}}],
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
        "End": True,
    }
    result = run({"S": state, "Caught": END}, BIG_INPUT)

    assert outcome(result) == ("FAILED", ERROR, cause("S"))
    assert types(result) == [
        "ExecutionStarted",
        "ParallelStateEntered",
        "ParallelStateFailed",
        "ExecutionFailed",
    ]


def test_a_parallel_whose_result_path_output_passes_the_limit_fails() -> None:
    """Error-handling page: the output of a state over the quota; the branches' results fit."""
    state = {
        "Type": "Parallel",
        "Branches": [{"StartAt": "B", "States": {"B": END}}],
        "ResultPath": "$.branches",
        "End": True,
    }
    result = run({"S": state}, BIG_INPUT)

    assert outcome(result) == ("FAILED", ERROR, cause("S"))
    assert "ParallelStateExited" not in types(result)


def test_a_branch_state_whose_output_passes_the_limit_fails_the_parallel() -> None:
    """Error-handling page: the output of a state (here inside a branch) over the quota; the
    branch fails with it, and so does the Parallel, whose States.ALL catcher cannot catch it."""
    state = {
        "Type": "Parallel",
        "Branches": [{"StartAt": "B", "States": {"B": {"Type": "Pass", "Parameters": DOUBLES, "End": True}}}],
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
        "End": True,
    }
    result = run({"S": state, "Caught": END}, BIG_INPUT)

    assert outcome(result) == ("FAILED", ERROR, cause("B"))


MAP = {
    "Type": "Map",
    "ItemsPath": "$.items",
    "ItemProcessor": {"StartAt": "I", "States": {"I": END}},
    "End": True,
}


def test_a_map_whose_item_selector_output_passes_the_limit_fails_before_that_iteration() -> None:
    """Error-handling page: the input of a state after Parameters processing over the quota
    (ItemSelector is the Map's Parameters for each item); no iteration starts."""
    state = MAP | {"ItemSelector": {"s.$": "States.Format('{}{}', $.s, $.s)"}}
    result = run({"S": state}, {"s": HALF, "items": [1, 2]})

    assert outcome(result) == ("FAILED", ERROR, cause("S"))
    assert types(result) == [
        "ExecutionStarted",
        "MapStateEntered",
        "MapStateStarted",
        "MapStateFailed",
        "ExecutionFailed",
    ]


def test_a_map_item_whose_result_passes_the_limit_fails_the_map() -> None:
    """Error-handling page: the output of a state over the quota; here the last state of an
    iteration, whose output is the item's result."""
    item = {"Type": "Pass", "Parameters": DOUBLES, "End": True}
    state = MAP | {"ItemProcessor": {"StartAt": "I", "States": {"I": item}}}
    result = run({"S": state}, {"items": [{"s": HALF}]})

    assert outcome(result) == ("FAILED", ERROR, cause("I"))
    assert "MapIterationFailed" in types(result)


def test_a_map_whose_result_path_output_passes_the_limit_fails() -> None:
    """Error-handling page: the output of a state over the quota; the results fit alone."""
    state = MAP | {"ResultPath": "$.results"}
    result = run({"S": state}, {"items": [HALF]})

    assert outcome(result) == ("FAILED", ERROR, cause("S"))
    assert "MapStateExited" not in types(result)


def test_a_catch_whose_result_path_makes_the_output_too_big_fails_the_execution() -> None:
    """Error-handling page: the output of a state over the quota. A catcher's ResultPath
    puts the error output into the input; when that passes the limit, the state's output is
    over it, and the execution fails with no TaskStateExited."""

    def fails(event: Any, context: Any) -> Any:
        raise ValueError("no")

    text = "x" * (PAYLOAD_LIMIT_BYTES - 8)  # {"s":"..."}: exactly the limit
    state = {
        "Type": "Task",
        "Resource": "fails",
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}],
        "End": True,
    }
    result = run({"S": state, "Caught": END}, {"s": text}, {"fails": fails})

    assert outcome(result) == ("FAILED", ERROR, cause("S"))
    assert types(result)[-2:] == ["LambdaFunctionFailed", "ExecutionFailed"]


BOUNDED = [
    {},
    [],
    "",
    None,
    True,
    -(10**18) + 1,
    -0.0,
    1.7976931348623157e308,
    float("inf"),
    {"\x01\x02": "\x01" * 100, "k": [None, False, 1, 2.5, "\u00e9\U0001f600"]},
    {"a": {"b": {"c": [{"d": '\n\t"\\'}]}}},
    [["x"] * 10, {"y": [1] * 10}],
    {"récit": "ü" * 50, "emoji": "\U0001f409" * 50},
]


@pytest.mark.parametrize("value", BOUNDED, ids=range(len(BOUNDED)))
def test_a_payload_bound_is_never_less_than_the_json_it_bounds(value: Any) -> None:
    """Service quotas page: the limit is on "UTF-8 encoded" JSON; the cheap bound that spares
    encoding every state's data must never say a value is smaller than it is, or data over
    the limit would pass."""
    encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    bound = payload_bound(value)

    assert bound >= NO_BOUND or 6 * bound >= len(encoded)


def test_values_with_no_cheap_bound_are_still_measured() -> None:
    """Service quotas page: 262,144 bytes; a value too deep to bound cheaply is measured."""
    deep: Any = "x" * PAYLOAD_LIMIT_BYTES
    for _ in range(20):
        deep = [deep]

    assert payload_bound(deep) >= NO_BOUND
    assert outcome(run({"S": {"Type": "Pass", "Result": deep, "End": True}}, {})) == (
        "FAILED",
        ERROR,
        cause("S"),
    )


BIG_PASS = {
    "StartAt": "P",
    "States": {"P": {"Type": "Pass", "Result": {"Arg1": "a" * (257 * 1024)}, "End": True}},
}
BIG_TASK_OUTPUT = {"StartAt": "S", "States": {"S": TASK_MERGE}}


# -- the local runner and the stack -----------------------------------------------------------


def test_redstep_run_local_reports_the_error_and_cause(tmp_path: Path) -> None:
    """Service quotas and error-handling pages, through ``redstep run --local --json`` as a
    user runs it: exit status 1, and the execution's error, cause and history."""
    definition = tmp_path / "big.asl.json"
    definition.write_text(json.dumps(BIG_PASS))

    done = subprocess.run(
        [sys.executable, "-m", "producer.cli", "run", str(definition), "--local", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    shown = json.loads(done.stdout)

    assert done.returncode == 1, done.stderr
    assert (shown["status"], shown["error"], shown["cause"]) == ("FAILED", ERROR, cause("P"))
    assert [event["type"] for event in shown["history"]] == [
        "ExecutionStarted",
        "PassStateEntered",
        "ExecutionFailed",
    ]


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An orchestrator and one worker process that loaded this file's functions."""
    settings, env = stack_settings(redis_server.url, "datalimits")
    with running_stack(settings, env, [THIS_FILE], tmp_path_factory.mktemp("workers"), workers=1) as running:
        yield running


def run_on_the_stack(
    stack: Stack, definition: dict[str, Any], input: Any
) -> tuple[dict[str, Any], list[str]]:
    return run_to_end(stack, definition, input, "datalimits")


@pytest.mark.stack
def test_a_pass_result_over_the_limit_fails_on_the_stack_as_in_the_local_runner(stack: Stack) -> None:
    """Service quotas and error-handling pages; AWS's recorded execution
    test_states_errors::test_start_large_input, on a real orchestrator."""
    described, history = run_on_the_stack(stack, BIG_PASS, {})
    local = LocalRunner(StateMachine.parse(BIG_PASS, "BigPass")).run({})

    assert (described["status"], described["error"], described["cause"]) == outcome(local)
    assert outcome(local) == ("FAILED", ERROR, cause("P"))
    assert history == ["ExecutionStarted", "PassStateEntered", "ExecutionFailed"]


@pytest.mark.stack
def test_a_task_output_over_the_limit_fails_on_the_stack_as_in_the_local_runner(stack: Stack) -> None:
    """Error-handling page: the output of a state over the quota, with the function run by a
    worker process."""
    described, history = run_on_the_stack(stack, BIG_TASK_OUTPUT, BIG_INPUT)

    assert (described["status"], described["error"], described["cause"]) == ("FAILED", ERROR, cause("S"))
    assert history[-2:] == ["LambdaFunctionSucceeded", "ExecutionFailed"]
