"""JSONata evaluation for ASL states: the public API, the Step Functions functions, and AWS's recordings."""

from __future__ import annotations

import copy
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.asl.errors import QUERY_EVALUATION_ERROR, StatesError
from orchestrator.asl.query_jsonata import compile_expression, evaluate, evaluate_as, fill, is_expression

CASES = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "cases"

STATES = {"input": {"name": "Ruby", "scales": [3, 1, 2], "nothing": None}, "context": {}}


def cause_of(call: Any) -> str:
    with pytest.raises(StatesError) as raised:
        call()
    assert raised.value.error == QUERY_EVALUATION_ERROR
    return raised.value.cause


# --- recognising expressions -------------------------------------------------------------


@pytest.mark.parametrize("text", ["{% $x %}", "{%$x%}", "{% %}", "{%\n  $states.input\n%}"])
def test_a_string_wrapped_in_percent_braces_is_an_expression(text: str) -> None:
    assert is_expression(text)


@pytest.mark.parametrize(
    "value", [" {% $x %}", "{% $x %} ", "{% $x", "$x %}", "$.path", "{%}", 7, None, ["{% $x %}"], {"a": 1}]
)
def test_padded_partial_or_non_string_values_are_not_expressions(value: Any) -> None:
    assert not is_expression(value)


# --- evaluating one expression -----------------------------------------------------------


def test_states_input_and_workflow_variables_are_bound_by_name() -> None:
    result = evaluate("{% $states.input.name & ' has ' & $count($scales) %}", STATES, {"scales": [1, 2]})
    assert result == "Ruby has 2"


def test_a_workflow_variable_holding_null_is_null_not_undefined() -> None:
    assert evaluate("{% $dragon %}", STATES, {"dragon": None}) is None
    assert evaluate("{% $states.input.nothing %}", STATES, {}) is None


def test_an_expression_that_yields_nothing_fails_with_aws_wording() -> None:
    cause = cause_of(lambda: evaluate("{% $doesNotExist %}", STATES, {}, field="Output"))
    assert cause == (
        "The JSONata expression '$doesNotExist' specified for the field 'Output' "
        "returned nothing (undefined)."
    )


def test_calling_an_unknown_function_fails_with_the_jsonata_error_code() -> None:
    cause = cause_of(lambda: evaluate("{% $randomSeeded(1) %}", STATES, {}, field="Output/FunctionResult"))
    assert cause == (
        "The JSONata expression '$randomSeeded(1)' specified for the field 'Output/FunctionResult' "
        "threw an error during evaluation. T1006: Attempted to invoke a non-function"
    )


def test_error_messages_quote_their_inserts_as_javascript_jsonata_does() -> None:
    cause = cause_of(lambda: evaluate("{% 1 + 'a' %}", STATES, {}, field="Output"))
    assert cause.endswith('T2002: The right side of the "+" operator must evaluate to a number')


def test_an_expression_that_yields_a_function_is_an_unsupported_result() -> None:
    cause = cause_of(lambda: evaluate("{% $fn := function($x){$x} %}", STATES, {}, field="Items"))
    assert cause == (
        "The JSONata expression '$fn := function($x){$x}' specified for the field 'Items' "
        "returned an unsupported result type."
    )


def test_eval_is_not_available_as_on_aws() -> None:
    assert cause_of(lambda: evaluate("{% $eval('1') %}", STATES, {})).endswith(
        "T1006: Attempted to invoke a non-function"
    )


def test_a_cause_without_a_field_names_only_the_expression() -> None:
    assert cause_of(lambda: evaluate("{% $nope %}", STATES, {})) == (
        "The JSONata expression '$nope' returned nothing (undefined)."
    )


def test_integral_numbers_come_out_as_integers_and_fractions_stay_fractions() -> None:
    assert evaluate("{% 6 / 3 %}", STATES, {}) == 2
    assert type(evaluate("{% 6 / 3 %}", STATES, {})) is int
    assert type(evaluate("{% $x %}", STATES, {"x": 4.0})) is int
    assert evaluate("{% 6 / 4 %}", STATES, {}) == 1.5
    assert evaluate("{% 0.1 %}", STATES, {}) == 0.1


def test_results_are_plain_json_values() -> None:
    result = evaluate("{% {'list': [1, null], 'flag': true} %}", STATES, {})
    assert json.dumps(result) == '{"list": [1, null], "flag": true}'
    assert type(result["list"]) is list


@pytest.mark.parametrize(
    ("expression", "kind", "shown"),
    [
        ("true", "boolean", "true"),
        ("1", "number", "1"),
        ("'string'", "string", '"string"'),
        ("{'foo': 'bar'}", "object", '{"foo":"bar"}'),
    ],
)
def test_a_value_of_the_wrong_type_is_reported_with_its_json(expression: str, kind: str, shown: str) -> None:
    cause = cause_of(lambda: evaluate_as(f"{{% {expression} %}}", STATES, {}, "array", field="Items"))
    assert cause == (
        f"The JSONata expression '{expression}' specified for the field 'Items' returned an unexpected "
        f"result type. Expected 'array', but was '{kind}' for value: {shown}"
    )


def test_a_value_of_the_expected_type_is_returned() -> None:
    assert evaluate_as("{% $states.input.scales %}", STATES, {}, "array", field="Items") == [3, 1, 2]


# --- filling templates -------------------------------------------------------------------


def test_fill_evaluates_expressions_at_any_depth_and_keeps_everything_else() -> None:
    template = {
        "who": "{% $states.input.name %}",
        "plain": " {% not evaluated %} ",
        "path.$": "$",
        "list": [None, 0, 0.1, True, "$nosuchvar", {"key": "{% true %}"}],
        "empty": {},
    }
    assert fill(template, STATES, {}, field="Output") == {
        "who": "Ruby",
        "plain": " {% not evaluated %} ",
        "path.$": "$",
        "list": [None, 0, 0.1, True, "$nosuchvar", {"key": True}],
        "empty": {},
    }


def test_fill_reports_the_path_to_a_nested_expression_that_yields_nothing() -> None:
    cause = cause_of(lambda: fill({"FunctionName": "{% $doesNotExist %}"}, STATES, {}, field="Arguments"))
    assert cause == (
        "The JSONata expression '$doesNotExist' specified for the field 'Arguments/FunctionName' "
        "returned nothing (undefined)."
    )


def test_fill_leaves_the_template_unchanged() -> None:
    template = {"a": ["{% $states.input.scales %}"], "b": {"c": 1}}
    before = copy.deepcopy(template)
    result = fill(template, STATES, {})
    result["b"]["c"] = 2
    assert template == before


json_without_expressions = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
).filter(lambda value: "{%" not in json.dumps(value))


@given(json_without_expressions)
def test_a_template_without_expressions_fills_to_itself(template: Any) -> None:
    assert fill(template, STATES, {}) == template


# --- compiling ---------------------------------------------------------------------------


def test_compiling_the_same_text_twice_reuses_the_parsed_expression() -> None:
    assert compile_expression("{% $states.input.a %}") is compile_expression("{%  $states.input.a  %}")


def test_a_syntax_error_is_a_value_error_naming_the_expression() -> None:
    with pytest.raises(ValueError, match=r"invalid JSONata expression '1 \+'"):
        compile_expression("{% 1 + %}")


# --- functions Step Functions adds -------------------------------------------------------


def test_partition_splits_an_array_into_chunks() -> None:
    assert evaluate("{% $partition([1,2,3,4,5,6,7,8,9,10], 3) %}", STATES, {}) == [
        [1, 2, 3],
        [4, 5, 6],
        [7, 8, 9],
        [10],
    ]
    assert evaluate("{% $partition([1], 5) %}", STATES, {}) == [[1]]


def test_range_includes_its_end_and_counts_down_with_a_negative_step() -> None:
    assert evaluate("{% $range(0, 10, 2) %}", STATES, {}) == [0, 2, 4, 6, 8, 10]
    assert evaluate("{% $range(3, 1, -1) %}", STATES, {}) == [3, 2, 1]
    assert evaluate("{% $range(1, 9, 9) %}", STATES, {}) == 1


def test_range_refuses_a_zero_step() -> None:
    assert "step of $range" in cause_of(lambda: evaluate("{% $range(1, 2, 0) %}", STATES, {}))


def test_hash_gives_the_hex_digest_for_each_supported_algorithm() -> None:
    assert evaluate("{% $hash('abc', 'SHA-256') %}", STATES, {}) == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert evaluate("{% $hash('abc', 'MD5') %}", STATES, {}) == "900150983cd24fb0d6963f7d28e17f72"
    assert len(evaluate("{% $hash('abc', 'SHA-512') %}", STATES, {})) == 128


def test_hash_refuses_an_unknown_algorithm() -> None:
    assert "'SHA-3' is not supported" in cause_of(lambda: evaluate("{% $hash('abc', 'SHA-3') %}", STATES, {}))


def test_random_with_a_seed_repeats_and_without_one_stays_below_one() -> None:
    seeded = evaluate("{% $random(42) %}", STATES, {})
    assert seeded == evaluate("{% $random(42) %}", STATES, {})
    assert all(0 <= evaluate("{% $random() %}", STATES, {}) < 1 for _ in range(20))


def test_uuid_is_a_random_version_4_uuid() -> None:
    first = evaluate("{% $uuid() %}", STATES, {})
    assert uuid.UUID(first).version == 4
    assert first != evaluate("{% $uuid() %}", STATES, {})


def test_parse_reads_json_text_including_null() -> None:
    assert evaluate("""{% $parse('{"a": [1, null]}') %}""", STATES, {}) == {"a": [1, None]}
    assert evaluate("{% $parse('null') %}", STATES, {}) is None


def test_parse_refuses_text_that_is_not_json() -> None:
    assert "$parse could not read" in cause_of(lambda: evaluate("{% $parse('{') %}", STATES, {}))


def test_now_and_millis_are_the_time_the_state_was_entered() -> None:
    states = {"input": {}, "context": {"State": {"EnteredTime": "2024-05-01T10:00:00.123Z"}}}
    assert evaluate("{% $now() %}", states, {}) == "2024-05-01T10:00:00.123Z"
    assert evaluate("{% $millis() %}", states, {}) == 1714557600123


# --- AWS recordings ----------------------------------------------------------------------

# Fields a JSONPath state may carry that this file's runner does not interpret.
JSONPATH_FIELDS = {"InputPath", "Parameters", "Result", "ResultSelector", "ResultPath", "OutputPath"}
RUNNABLE_TYPES = {"Pass", "Succeed", "Fail", "Choice"}


def query_language(definition: dict[str, Any], state: dict[str, Any]) -> str:
    return state.get("QueryLanguage", definition.get("QueryLanguage", "JSONPath"))


def runnable_here(case: dict[str, Any]) -> bool:
    """A JSONata case of Pass/Succeed/Fail/Choice states whose JSONPath states only pass data on."""
    definition = case["definition"]
    states = definition["States"].values()
    if case.get("functions") or not any(query_language(definition, s) == "JSONata" for s in states):
        return False
    for state in states:
        if state["Type"] not in RUNNABLE_TYPES:
            return False
        if query_language(definition, state) == "JSONPath" and (
            JSONPATH_FIELDS & state.keys() or any(key.endswith(".$") for key in state.get("Assign", {}))
        ):
            return False
    return True


def recorded_cases() -> list[dict[str, Any]]:
    cases = [json.loads(path.read_text()) for path in sorted(CASES.glob("*/*.json"))]
    return [case for case in cases if runnable_here(case)]


def context_for(case: dict[str, Any], state_name: str) -> dict[str, Any]:
    return {
        "Execution": {
            "Id": "arn:aws:states:us-east-1:111111111111:execution:machine:run",
            "Input": case["input"],
            "StartTime": "2024-05-01T10:00:00.000Z",
            "Name": "run",
            "RoleArn": "arn:aws:iam::111111111111:role/redstep",
            "RedriveCount": 0,
        },
        "StateMachine": {
            "Id": "arn:aws:states:us-east-1:111111111111:stateMachine:machine",
            "Name": "machine",
        },
        "State": {"Name": state_name, "EnteredTime": "2024-05-01T10:00:00.000Z"},
    }


def transition(state: dict[str, Any], output: Any) -> tuple[str, Any, str | None]:
    if state.get("Type") == "Succeed" or state.get("End"):
        return "succeeded", output, None
    return "next", output, state["Next"]


def chosen_rule(state: dict[str, Any], states: dict[str, Any], variables: dict[str, Any]) -> dict[str, Any]:
    """The first Choice rule whose Condition holds, else the state itself standing for Default."""
    for rule in state["Choices"]:
        if fill(rule["Condition"], states, variables, field="Condition") is True:
            return rule
    return {**state, "Next": state["Default"]}


def run_state(
    case: dict[str, Any], name: str, data: Any, variables: dict[str, Any]
) -> tuple[str, Any, str | None]:
    """One state: ("next", data, next name), ("succeeded", output, None) or ("failed", fault, None)."""
    definition = case["definition"]
    state = definition["States"][name]
    if query_language(definition, state) == "JSONPath":
        variables.update(state.get("Assign", {}))
        return transition(state, data)
    states = {"input": data, "context": context_for(case, name)}
    if state["Type"] == "Fail":
        error = fill(state.get("Error"), states, variables, field="Error")
        return "failed", (error, fill(state.get("Cause"), states, variables, field="Cause")), None
    source = chosen_rule(state, states, variables) if state["Type"] == "Choice" else state
    output = fill(source["Output"], states, variables, field="Output") if "Output" in source else data
    # Assign sees the variables as they were when the state was entered, as Output does.
    variables.update(fill(source.get("Assign", {}), states, variables, field="Assign"))
    return transition(source, output)


def run(case: dict[str, Any]) -> dict[str, Any]:
    definition = case["definition"]
    name, data, variables, entered_event = definition["StartAt"], case["input"], {}, 2
    while True:
        try:
            outcome, value, next_name = run_state(case, name, data, variables)
        except StatesError as failure:
            prefix = (
                f"An error occurred while executing the state '{name}' "
                f"(entered at the event id #{entered_event}). "
            )
            return {
                "status": "FAILED",
                "output": None,
                "error": failure.error,
                "cause": prefix + failure.cause,
            }
        if outcome == "failed":
            return {"status": "FAILED", "output": None, "error": value[0], "cause": value[1]}
        if outcome == "succeeded":
            return {"status": "SUCCEEDED", "output": value, "error": None, "cause": None}
        name, data, entered_event = next_name, value, entered_event + 2


def matches(expected: Any, actual: Any, case: dict[str, Any], where: str = "/output") -> bool:
    """Deep equality where 1 and 1.0 differ, honouring the case's nondeterministic and pattern pointers."""
    if where in case.get("patterns", {}):
        return isinstance(actual, str) and re.fullmatch(case["patterns"][where], actual) is not None
    if where in case.get("nondeterministic", []):
        return True
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and expected.keys() == actual.keys()
            and all(matches(expected[k], actual[k], case, f"{where}/{k}") for k in expected)
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(
                matches(e, a, case, f"{where}/{i}")
                for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            )
        )
    return type(expected) is type(actual) and expected == actual


RECORDED = recorded_cases() if CASES.is_dir() else []


@pytest.mark.skipif(not CASES.is_dir(), reason="AWS recordings live in ../shared/conformance, absent here")
def test_some_recorded_cases_are_runnable_with_the_tiny_runner() -> None:
    assert len(RECORDED) > 0


@pytest.mark.skipif(not CASES.is_dir(), reason="AWS recordings live in ../shared/conformance, absent here")
@pytest.mark.parametrize("case", RECORDED, ids=[case["id"] for case in RECORDED])
def test_a_recorded_execution_ends_as_it_did_on_aws(case: dict[str, Any]) -> None:
    expected, actual = case["expected"], run(case)
    assert (actual["status"], actual["error"], actual["cause"]) == (
        expected["status"],
        expected["error"],
        expected["cause"],
    )
    assert matches(expected["output"], actual["output"], case), actual["output"]


def test_a_runaway_expression_is_stopped_instead_of_looping_forever() -> None:
    cause = cause_of(lambda: evaluate("{% ($f := function(){ $f() }; $f()) %}", STATES, {}, field="Output"))
    assert "Check for infinite loop" in cause
