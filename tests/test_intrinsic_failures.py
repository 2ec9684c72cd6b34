"""An intrinsic function that cannot do its work fails its state with States.IntrinsicFailure.

Which sources say what:

- AWS's recorded executions (../shared/conformance): none of a JSONPath intrinsic that fails;
  the one failing case under intrinsic_functions is JSONata's ``$randomSeeded``, a
  States.QueryEvaluationError, which is JSONata's error and not an intrinsic's.
- "Intrinsic functions for JSONPath states" (Developer Guide,
  https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html) names no
  error. It gives the input each function accepts, among them States.MathAdd's: "You must
  specify integer values in the range of -2147483648 and 2147483647".
- "Handling errors in Step Functions workflows" (Developer Guide,
  https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html) lists
  no error for intrinsics, and keeps only States.Runtime and States.DataLimitExceeded from
  States.ALL.
- The Amazon States Language specification (https://states-language.net/spec.html,
  Appendix A) names it: "States.IntrinsicFailure: Within a Payload Template, the attempt to
  invoke an Intrinsic Function failed."

So the name is the specification's, and, not being States.Runtime, it is an error a Retry or
Catch on States.ALL handles. No source words the cause: redstep's names the function and
what was wrong with its arguments, after AWS's usual prefix for an error a state raised.
"""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.asl.definition import StateMachine
from orchestrator.local import LocalResult, LocalRunner

ERROR = "States.IntrinsicFailure"
PREFIX = "An error occurred while executing the state 'S' (entered at the event id #2). "
INPUT = {"numbers": [1, 2, 3], "text": "not json", "big": 2147483648, "small": -2147483649}


def run(states: dict[str, Any], input: Any = INPUT) -> LocalResult:
    definition = {"StartAt": "S", "States": states}
    return LocalRunner(StateMachine.parse(definition, "Intrinsics")).run(input, start=0.0)


def evaluating(expression: str, **fields: Any) -> dict[str, Any]:
    return {"S": {"Type": "Pass", "Parameters": {"v.$": expression}, "End": True} | fields}


# Wrong types, an index out of bounds, text that is not JSON and an unknown hash algorithm are
# tested with the other documented errors (test_documented_errors.py); here, the range the
# Developer Guide gives States.MathAdd.
FAILURES = {
    "States.MathAdd($.big, 0)": "States.MathAdd: the first value must be between -2147483648 and 2147483647, "
    "not 2147483648",
    "States.MathAdd(1, $.small)": "States.MathAdd: the second value must be between -2147483648 and "
    "2147483647, not -2147483649",
}


@pytest.mark.parametrize("expression", list(FAILURES))
def test_math_add_outside_the_documented_range_fails_with_intrinsic_failure(expression: str) -> None:
    """Specification, Appendix A: States.IntrinsicFailure, "the attempt to invoke an
    Intrinsic Function failed"; the Developer Guide names no other error."""
    result = run(evaluating(expression))

    assert (result.status, result.error, result.cause) == (
        "FAILED",
        ERROR,
        f"{PREFIX}Invalid arguments in {FAILURES[expression]}",
    )
    assert [event["type"] for event in result.history] == [
        "ExecutionStarted",
        "PassStateEntered",
        "ExecutionFailed",
    ]


def test_math_add_takes_the_ends_of_the_documented_range() -> None:
    """Developer Guide, States.MathAdd: "integer values in the range of -2147483648 and
    2147483647", each "round[ed] off to the nearest integer" first."""
    for expression, expected in (
        ("States.MathAdd(2147483647, 0)", 2147483647),
        ("States.MathAdd(-2147483648, 0)", -2147483648),
        ("States.MathAdd(2147483647.4, -1)", 2147483646),
    ):
        result = run(evaluating(expression))
        assert (result.status, result.output) == ("SUCCEEDED", {"v": expected}), expression


def test_states_all_catches_an_intrinsic_failure() -> None:
    """Error-handling page: States.ALL keeps out only States.Runtime and
    States.DataLimitExceeded, so a catcher on it handles an intrinsic's failure."""
    task = {"Type": "Task", "Resource": "echo", "Parameters": {"v.$": "States.ArrayGetItem($.numbers, 3)"}}
    states = {
        "S": task
        | {
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}],
            "End": True,
        },
        "Caught": {"Type": "Pass", "End": True},
    }
    result = LocalRunner(
        StateMachine.parse({"StartAt": "S", "States": states}, "Intrinsics"),
        {"echo": lambda event, context: event},
    ).run(INPUT, start=0.0)

    assert result.status == "SUCCEEDED", result.cause
    assert result.output["error"]["Error"] == ERROR


def test_a_retrier_that_names_intrinsic_failure_retries_it() -> None:
    """Error-handling page: a retrier whose ErrorEquals names the error retries the state; the
    same arguments fail again, and the execution fails after the last attempt."""
    retry = [{"ErrorEquals": [ERROR], "IntervalSeconds": 1, "MaxAttempts": 2}]
    task = {
        "Type": "Task",
        "Resource": "echo",
        "Parameters": {"v.$": "States.MathAdd($.big, 0)"},
        "End": True,
    }
    result = LocalRunner(
        StateMachine.parse({"StartAt": "S", "States": {"S": task | {"Retry": retry}}}, "Intrinsics"),
        {"echo": lambda event, context: event},
    ).run(INPUT, start=0.0)

    assert (result.status, result.error) == ("FAILED", ERROR)
    assert [event["type"] for event in result.history].count("TaskStateEntered") == 1
    assert result.history[-1]["type"] == "ExecutionFailed"
