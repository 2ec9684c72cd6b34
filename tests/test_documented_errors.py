"""Run-time errors named and worded as AWS documents and records them.

Choice without a match, every ``*Path`` field that selects nothing or the wrong type, an
intrinsic function given wrong arguments, a Parallel's or Map's combined output over the
payload limit. Where AWS recorded a message (../shared/conformance), that wording is the
one used for every field of its kind: "Invalid path '<path>' : No results for path: ..."
for a path that selects nothing, as AWS words it for InputPath and OutputPath.
"""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.asl.definition import StateMachine
from orchestrator.local import LocalRunner

PREFIX = "An error occurred while executing the state 'S' (entered at the event id #2). "
PASS = {"Type": "Pass", "End": True}
TASK = {"Type": "Task", "Resource": "f", "End": True}
MAP = {
    "Type": "Map",
    "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "End": True}}},
    "End": True,
}
WAIT = {"Type": "Wait", "End": True}


def identity(event: Any, context: Any) -> Any:
    return event


def run(state: dict[str, Any], input: Any, **more_states: Any) -> tuple[str, Any, Any]:
    definition = {"StartAt": "S", "States": {"S": state, **more_states}}
    result = LocalRunner(StateMachine.parse(definition, "Errors"), {"f": identity}).run(input, start=0.0)
    return result.status, result.error, result.cause


# -- Choice ------------------------------------------------------------------------------------

NO_MATCH = {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericEquals": 1, "Next": "One"}]}
ONE = {"Type": "Pass", "End": True}


def test_a_choice_without_a_match_or_default_fails_with_no_choice_matched() -> None:
    """The ASL specification's error table (states-language.net, "Errors"): States.NoChoiceMatched,
    "A Choice state failed to find a match for the condition field extracted from its input";
    the Developer Guide's "Choice workflow state": with no Default, "the state machine will
    throw an error due to a failure to transition out of the state"."""
    assert run(NO_MATCH, {"n": 2}, One=ONE) == (
        "FAILED",
        "States.NoChoiceMatched",
        PREFIX + "Failed to transition out of the state. The state does not point to a next state.",
    )


def test_no_choice_matched_is_an_error_a_parallel_can_catch() -> None:
    """Unlike States.Runtime, which the Developer Guide's "Error handling" page says States.ALL
    never catches, States.NoChoiceMatched is an ordinary error of the branch that raised it."""
    parallel = {
        "Type": "Parallel",
        "Branches": [{"StartAt": "C", "States": {"C": NO_MATCH, "One": ONE}}],
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
        "End": True,
    }
    definition = {"StartAt": "P", "States": {"P": parallel, "Caught": {"Type": "Pass", "End": True}}}
    result = LocalRunner(StateMachine.parse(definition, "Errors")).run({"n": 2}, start=0.0)

    assert result.status == "SUCCEEDED"
    assert result.output["Error"] == "States.NoChoiceMatched"
    assert [event["type"] for event in result.history] == [
        "ExecutionStarted",
        "ParallelStateEntered",
        "ParallelStateStarted",
        "ChoiceStateEntered",
        "ParallelStateExited",
        "PassStateEntered",
        "PassStateExited",
        "ExecutionSucceeded",
    ]


# -- every *Path field that selects nothing ----------------------------------------------------

SELECTS_NOTHING = {
    "Pass InputPath": (PASS | {"InputPath": "$.x"}, "$.x"),
    "Pass OutputPath": (PASS | {"OutputPath": "$.x"}, "$.x"),
    "Task InputPath": (TASK | {"InputPath": "$.x"}, "$.x"),
    "Task OutputPath": (TASK | {"OutputPath": "$.x"}, "$.x"),
    "Task TimeoutSecondsPath": (TASK | {"TimeoutSecondsPath": "$.x"}, "$.x"),
    "Task HeartbeatSecondsPath": (TASK | {"HeartbeatSecondsPath": "$.x"}, "$.x"),
    "Wait SecondsPath": (WAIT | {"SecondsPath": "$.x"}, "$.x"),
    "Wait TimestampPath": (WAIT | {"TimestampPath": "$.x"}, "$.x"),
    "Fail ErrorPath": ({"Type": "Fail", "ErrorPath": "$.x"}, "$.x"),
    "Fail CausePath": ({"Type": "Fail", "CausePath": "$.x"}, "$.x"),
    "Map ItemsPath": (MAP | {"ItemsPath": "$.x"}, "$.x"),
    "Map MaxConcurrencyPath": (MAP | {"ItemsPath": "$.items", "MaxConcurrencyPath": "$.x"}, "$.x"),
    "Map ToleratedFailureCountPath": (
        MAP | {"ItemsPath": "$.items", "ToleratedFailureCountPath": "$.x"},
        "$.x",
    ),
    "Map ToleratedFailurePercentagePath": (
        MAP | {"ItemsPath": "$.items", "ToleratedFailurePercentagePath": "$.x"},
        "$.x",
    ),
    "Succeed OutputPath": ({"Type": "Succeed", "OutputPath": "$.x"}, "$.x"),
    "Parallel InputPath": (
        {
            "Type": "Parallel",
            "Branches": [{"StartAt": "B", "States": {"B": PASS}}],
            "InputPath": "$.x",
            "End": True,
        },
        "$.x",
    ),
}


@pytest.mark.parametrize("case", list(SELECTS_NOTHING))
def test_a_path_field_that_selects_nothing_fails_as_aws_words_it(case: str) -> None:
    """AWS's recorded wording for InputPath/OutputPath (conformance case
    test_invalid_jsonpath__ST_INVALID_JSONPATH_IN_INPUTPATH) holds for every *Path field."""
    state, path = SELECTS_NOTHING[case]
    assert run(state, {"items": [1]}) == (
        "FAILED",
        "States.Runtime",
        f"{PREFIX}Invalid path '{path}' : No results for path: $['x']",
    )


# -- *Path fields that select the wrong type ---------------------------------------------------

WRONG_TYPE = {
    "Task TimeoutSecondsPath": (
        TASK | {"TimeoutSecondsPath": "$.x"},
        "States.Runtime",
        "The TimeoutSecondsPath parameter does not reference a valid integer value.",
    ),
    "Task HeartbeatSecondsPath": (
        TASK | {"HeartbeatSecondsPath": "$.x"},
        "States.Runtime",
        "The HeartbeatSecondsPath parameter does not reference a valid integer value.",
    ),
    "Wait SecondsPath": (
        WAIT | {"SecondsPath": "$.x"},
        "States.Runtime",
        "The SecondsPath parameter cannot be parsed as a long value: $.x == text",
    ),
    "Wait TimestampPath": (
        WAIT | {"TimestampPath": "$.x"},
        "States.Runtime",
        "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time "
        "format string: $.x == text",
    ),
    "Map ItemsPath": (
        MAP | {"ItemsPath": "$.x"},
        "States.Runtime",
        'Item path $.x evaluated to a non-array value: "text"',
    ),
    "Map MaxConcurrencyPath": (
        MAP | {"ItemsPath": "$.items", "MaxConcurrencyPath": "$.x"},
        "States.Runtime",
        'The MaxConcurrencyPath field refers to value "text" which is not a valid integer: $.x',
    ),
    "Map ToleratedFailureCountPath": (
        MAP | {"ItemsPath": "$.items", "ToleratedFailureCountPath": "$.x"},
        "States.Runtime",
        'The ToleratedFailureCountPath field refers to value "text" which is not a valid integer: $.x',
    ),
    "Map ToleratedFailurePercentagePath": (
        MAP | {"ItemsPath": "$.items", "ToleratedFailurePercentagePath": "$.x"},
        "States.Runtime",
        'The ToleratedFailurePercentagePath field refers to value "text" which is not a valid float: $.x',
    ),
    "Pass ResultPath": (
        PASS | {"ResultPath": "$.x.y"},
        "States.ResultPathMatchFailure",
        'Unable to apply ResultPath \'$.x.y\' to input \'{"x":"text","items":[1]}\'',
    ),
    "Task ResultPath": (
        TASK | {"ResultPath": "$.x.y"},
        "States.ResultPathMatchFailure",
        'Unable to apply ResultPath \'$.x.y\' to input \'{"x":"text","items":[1]}\'',
    ),
}


@pytest.mark.parametrize("case", list(WRONG_TYPE))
def test_a_path_field_that_selects_the_wrong_type_fails_as_aws_words_it(case: str) -> None:
    """Recorded wordings: conformance cases test_wait__test_base_wait_seconds_path__*,
    test_wait_timestamp_path__*, test_map_state_tolerated_failure_*_path__*,
    test_max_concurrency_path__*; ResultPath: the ASL spec's States.ResultPathMatchFailure."""
    state, error, cause = WRONG_TYPE[case]
    assert run(state, {"x": "text", "items": [1]}) == ("FAILED", error, PREFIX + cause)


@pytest.mark.parametrize(
    ("field", "value", "shown"), [("ErrorPath", 5, "5"), ("CausePath", {"a": 1}, '{"a":1}')]
)
def test_a_fail_path_that_selects_no_string_fails_the_state(field: str, value: Any, shown: str) -> None:
    """ "Fail workflow state" (Developer Guide, state-fail.html): ErrorPath and CausePath must
    select "a field whose value is a string"; an error named by a number cannot fail an execution."""
    assert run({"Type": "Fail", field: "$.x"}, {"x": value}) == (
        "FAILED",
        "States.Runtime",
        f"{PREFIX}The {field} parameter does not reference a valid string value: $.x == {shown}",
    )


# -- intrinsic functions given wrong arguments --------------------------------------------------

INTRINSIC_FAILURES = {
    "States.ArrayGetItem($.a, 5)": "Invalid arguments in States.ArrayGetItem: the index 5 is out of bounds "
    "for an array of length 2",
    "States.StringToJson($.s)": "Invalid arguments in States.StringToJson: the string is not valid JSON "
    "(Expecting value: line 1 column 1 (char 0))",
    "States.MathAdd($.s, 1)": "Invalid arguments in States.MathAdd: the first value must be a number, "
    "not string",
    "States.Format($.f, $.s)": "Invalid arguments in States.Format: the format string has 2 placeholder(s) "
    "but 1 value(s) follow it",
    "States.Hash($.s, 'MD4')": "Invalid arguments in States.Hash: the algorithm 'MD4' is not one of MD5, "
    "SHA-1, SHA-256, SHA-384, SHA-512",
}


@pytest.mark.parametrize("expression", list(INTRINSIC_FAILURES))
def test_an_intrinsic_given_wrong_arguments_fails_with_intrinsic_failure(expression: str) -> None:
    """ "Intrinsic functions" (Developer Guide, intrinsic-functions.html) and the ASL spec's
    error table: States.IntrinsicFailure, "the attempt to invoke an Intrinsic Function failed";
    the cause names the function and what was wrong with its arguments."""
    state = PASS | {"Parameters": {"v.$": expression}}
    assert run(state, {"a": [1, 2], "s": "text", "f": "{} {}"}) == (
        "FAILED",
        "States.IntrinsicFailure",
        PREFIX + INTRINSIC_FAILURES[expression],
    )


# -- a fork's combined output over the payload limit --------------------------------------------


@pytest.mark.parametrize("fork", ["Map", "Parallel"])
def test_results_that_together_pass_256_kib_fail_the_fork_with_data_limit_exceeded(fork: str) -> None:
    """ "Quotas for Standard Workflows" (Developer Guide, limits.html): 262,144 bytes is the
    most "a task, state, or execution" may output; each result is under it, all four are not."""
    quarter = {
        "Type": "Pass",
        "Parameters": {"s.$": "States.Format('{}{}{}{}', $.s, $.s, $.s, $.s)"},
        "End": True,
    }
    if fork == "Map":
        state = MAP | {"ItemProcessor": {"StartAt": "I", "States": {"I": quarter}}, "ItemsPath": "$.items"}
    else:
        state = {
            "Type": "Parallel",
            "Branches": [{"StartAt": "I", "States": {"I": quarter}}] * 4,
            "End": True,
        }
    input = {"s": "x" * 20_000, "items": [{"s": "x" * 20_000}] * 4}
    assert run(state, input) == (
        "FAILED",
        "States.DataLimitExceeded",
        "The state/task 'S' returned a result with a size exceeding the maximum number of bytes "
        "service limit.",
    )
