"""The Choice state's rules: AWS-recorded executions, AWS's error wording, static checks."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonata
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.asl.choice import check_rule, choose, choose_by_condition, matches
from orchestrator.asl.errors import PathNotFound, StatesError

CASES = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "cases"
needs_conformance = pytest.mark.skipif(
    not CASES.is_dir(), reason=f"the AWS-recorded conformance cases are not at {CASES}"
)

# ---------------------------------------------------------------------------------------
# A tiny interpreter for the machines the Choice cases use: Choice, Pass, Succeed and Fail.

_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\['([^']*)'\]")


def resolver(document: Any, context: Any = None, variables: dict[str, Any] | None = None) -> Any:
    """A resolve() over ``document`` for ``$``, ``$.a.b``, ``$.a[0]``, ``$$.x`` and ``$var`` paths."""

    def resolve(path: str) -> Any:
        root, rest = document, path[1:]
        if path.startswith("$$"):
            root, rest = context, path[2:]
        elif re.match(r"\$\w", path):
            name = re.match(r"\$(\w+)", path).group(1)
            if name not in (variables or {}):
                raise PathNotFound(path, variables)
            root, rest = variables[name], path[1 + len(name) :]
        return _walk(root, rest, path)

    return resolve


def _walk(value: Any, steps: str, path: str) -> Any:
    position = 0
    while position < len(steps):
        step = _STEP.match(steps, position)
        if step is None:
            raise ValueError(f"the test resolver cannot read the path {path!r}")
        key, index, quoted = step.groups()
        name = key if key is not None else quoted
        if name is not None and isinstance(value, dict) and name in value:
            value = value[name]
        elif index is not None and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        else:
            raise PathNotFound(path, value)
        position = step.end()
    return value


def _jsonata_condition(data: Any) -> Any:
    def evaluate(condition: str) -> Any:
        expression = jsonata.Jsonata(condition.strip().removeprefix("{%").removesuffix("%}"))
        return expression.evaluate(data, {"states": {"input": data}})

    return evaluate


def _is_jsonata(definition: dict[str, Any], state: dict[str, Any]) -> bool:
    return state.get("QueryLanguage", definition.get("QueryLanguage")) == "JSONata"


SUPPORTED_FIELDS = {
    "Choice": {"Type", "Choices", "Default", "Comment", "QueryLanguage"},
    "Pass": {"Type", "Result", "Next", "End", "Comment", "QueryLanguage"},
    "Succeed": {"Type", "Comment", "QueryLanguage"},
    "Fail": {"Type", "Error", "Cause", "Comment", "QueryLanguage"},
}


def runnable(case: dict[str, Any]) -> bool:
    """Whether the tiny interpreter can run a case: only the fields it knows, no Tasks."""
    states = case["definition"]["States"]
    has_choice = any(state["Type"] == "Choice" for state in states.values())
    return has_choice and all(
        set(state) <= SUPPORTED_FIELDS.get(state["Type"], set()) for state in states.values()
    )


def run(case: dict[str, Any]) -> dict[str, Any]:
    """The status, output, error and cause the tiny interpreter gets for a case."""
    definition, data = case["definition"], case["input"]
    name = definition["StartAt"]
    while True:
        state = definition["States"][name]
        kind = state["Type"]
        if kind == "Choice":
            try:
                name = _choose(definition, state, data)
            except StatesError as failure:
                return {"status": "FAILED", "output": None, "error": failure.error, "cause": failure.cause}
            continue
        if kind == "Fail":
            return {
                "status": "FAILED",
                "output": None,
                "error": state.get("Error"),
                "cause": state.get("Cause"),
            }
        if kind == "Pass":
            data = state.get("Result", data)
        if kind == "Succeed" or state.get("End"):
            return {"status": "SUCCEEDED", "output": data, "error": None, "cause": None}
        name = state["Next"]


def _choose(definition: dict[str, Any], state: dict[str, Any], data: Any) -> str:
    if _is_jsonata(definition, state):
        return choose_by_condition(state, _jsonata_condition(data))
    return choose(state, resolver(data, {"Execution": {"Input": data}}))


def load(pattern: str) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(CASES.glob(pattern))] if CASES.is_dir() else []


CHOICE_OPERATOR_CASES = load("choice_operators/*.json")
SCENARIO_CASES = [case for case in load("scenarios/*test_choice_*.json") if runnable(case)]


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [case["id"] for case in cases]


@needs_conformance
def test_every_choice_operators_case_is_runnable_by_the_tiny_interpreter() -> None:
    usable = [case for case in CHOICE_OPERATOR_CASES if runnable(case)]
    print(f"choice_operators: {len(usable)} of {len(CHOICE_OPERATOR_CASES)} cases covered")
    assert len(CHOICE_OPERATOR_CASES) >= 295
    assert len(usable) == len(CHOICE_OPERATOR_CASES)


@needs_conformance
def test_the_choice_scenarios_cover_both_query_languages() -> None:
    languages = {
        _is_jsonata(case["definition"], state)
        for case in SCENARIO_CASES
        for state in case["definition"]["States"].values()
        if state["Type"] == "Choice"
    }
    print(f"scenarios: {len(SCENARIO_CASES)} choice cases covered")
    assert len(SCENARIO_CASES) >= 5
    assert languages == {True, False}


@needs_conformance
@pytest.mark.parametrize(
    "case", CHOICE_OPERATOR_CASES + SCENARIO_CASES, ids=_ids(CHOICE_OPERATOR_CASES + SCENARIO_CASES)
)
def test_the_branch_taken_is_the_one_aws_took(case: dict[str, Any]) -> None:
    expected = {key: case["expected"][key] for key in ("status", "output", "error", "cause")}
    assert run(case) == expected


# ---------------------------------------------------------------------------------------
# JSONPath rules: AWS's error wording and type-mismatch semantics.

CHECK = {
    "Type": "Choice",
    "Choices": [{"Variable": "$.n", "NumericGreaterThan": 10, "Next": "Big"}],
    "Default": "Small",
}


def rule_holds(rule: dict[str, Any], document: Any) -> bool:
    return matches(rule, resolver(document))


def test_a_matching_rule_names_the_next_state_and_otherwise_the_default_is_taken() -> None:
    assert choose(CHECK, resolver({"n": 11})) == "Big"
    assert choose(CHECK, resolver({"n": 10})) == "Small"


def test_the_first_matching_rule_wins() -> None:
    state = {
        "Type": "Choice",
        "Choices": [
            {"Variable": "$.n", "NumericGreaterThan": 1, "Next": "First"},
            {"Variable": "$.n", "NumericGreaterThan": 0, "Next": "Second"},
        ],
    }
    assert choose(state, resolver({"n": 5})) == "First"


def test_no_match_and_no_default_fails_with_no_choice_matched() -> None:
    """ASL spec, "Errors" (https://states-language.net/spec.html#appendix-a): States.NoChoiceMatched,
    "A Choice state failed to find a match for the condition field extracted from its input";
    the cause words the Developer Guide's "Choice workflow state" page: "the state machine will
    throw an error due to a failure to transition out of the state"."""
    state = {"Type": "Choice", "Choices": CHECK["Choices"]}
    with pytest.raises(StatesError) as failure:
        choose(state, resolver({"n": 1}))
    assert failure.value.error == "States.NoChoiceMatched"
    assert failure.value.cause == (
        "Failed to transition out of the state. The state does not point to a next state."
    )


def test_a_variable_that_selects_nothing_is_a_runtime_error_with_aws_wording() -> None:
    with pytest.raises(StatesError) as failure:
        choose(CHECK, resolver({"m": 1}))
    assert failure.value.error == "States.Runtime"
    assert failure.value.cause == (
        "Invalid path '$.n': The choice state's condition path references an invalid value."
    )


def test_a_comparison_path_that_selects_nothing_is_a_runtime_error_naming_that_path() -> None:
    rule = {"Variable": "$.a", "NumericEqualsPath": "$.b", "Next": "X"}
    with pytest.raises(StatesError) as failure:
        rule_holds(rule, {"a": 1})
    assert failure.value.error == "States.Runtime"
    assert failure.value.cause.startswith("Invalid path '$.b'")


def test_is_present_tests_presence_instead_of_failing() -> None:
    assert rule_holds({"Variable": "$.gone", "IsPresent": False}, {})
    assert not rule_holds({"Variable": "$.gone", "IsPresent": True}, {})
    assert rule_holds({"Variable": "$.here", "IsPresent": True}, {"here": None})


def test_other_type_tests_on_a_missing_variable_fail_like_any_comparison() -> None:
    with pytest.raises(StatesError, match="Invalid path"):
        rule_holds({"Variable": "$.gone", "IsNull": False}, {})


@pytest.mark.parametrize("value", ["1", True, None, [1], {"n": 1}])
def test_a_numeric_comparison_with_a_non_number_is_simply_false(value: Any) -> None:
    assert not rule_holds({"Variable": "$.v", "NumericEquals": 1}, {"v": value})
    assert not rule_holds({"Variable": "$.v", "NumericLessThanEquals": 1}, {"v": value})


def test_booleans_are_not_numbers_and_numbers_are_not_booleans() -> None:
    assert not rule_holds({"Variable": "$.v", "IsNumeric": True}, {"v": True})
    assert not rule_holds({"Variable": "$.v", "BooleanEquals": True}, {"v": 1})
    assert rule_holds({"Variable": "$.v", "NumericEquals": 1}, {"v": 1.0})


def test_a_path_operand_of_the_wrong_type_is_false_not_an_error() -> None:
    rule = {"Variable": "$.a", "NumericLessThanPath": "$.b"}
    assert not rule_holds(rule, {"a": 1, "b": "2"})
    assert rule_holds(rule, {"a": 1, "b": 2})


def test_workflow_variables_and_the_context_object_can_be_tested() -> None:
    resolve = resolver({}, {"Execution": {"Input": {"kind": "dragon"}}}, {"limit": 3})
    assert matches({"Variable": "$limit", "NumericEquals": 3}, resolve)
    assert matches({"Variable": "$$.Execution.Input.kind", "StringEquals": "dragon"}, resolve)
    assert not matches({"Variable": "$missing", "IsPresent": True}, resolve)


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("log-*.txt", "log-2024.txt", True),
        ("log-*.txt", "log-.txt", True),
        ("log-*.txt", "log-2024.csv", False),
        ("*", "", True),
        ("a*b*c", "aXXbYYc", True),
        ("a\\*b", "a*b", True),
        ("a\\*b", "aXb", False),
        ("100%.?", "100%.?", True),
        ("line*", "line\nbreak", True),
        ("a\\\\*", "a\\anything", True),
    ],
)
def test_string_matches_treats_star_as_a_wildcard_and_backslash_star_as_a_star(
    pattern: str, value: str, expected: bool
) -> None:
    assert rule_holds({"Variable": "$.s", "StringMatches": pattern}, {"s": value}) is expected


def test_strings_order_lexicographically_and_by_utf16_code_unit() -> None:
    assert rule_holds({"Variable": "$.s", "StringLessThan": "AB"}, {"s": "A"})
    assert rule_holds({"Variable": "$.s", "StringGreaterThan": "a"}, {"s": "b"})
    # U+1F600 is a surrogate pair (0xD83D...) and so sorts before U+FF21 in UTF-16.
    assert rule_holds({"Variable": "$.s", "StringLessThan": "\uff21"}, {"s": "\U0001f600"})


@pytest.mark.parametrize(
    ("left", "operator_name", "right"),
    [
        ("2024-01-01T00:00:00Z", "TimestampEquals", "2024-01-01T01:00:00+01:00"),
        ("2024-01-01T00:00:00.5Z", "TimestampGreaterThan", "2024-01-01T00:00:00Z"),
        ("2024-01-01T00:00:00.000000001Z", "TimestampGreaterThan", "2024-01-01T00:00:00Z"),
        ("2023-12-31T23:59:59-05:00", "TimestampGreaterThan", "2024-01-01T00:00:00Z"),
        ("2024-01-01T00:00:00Z", "TimestampLessThanEquals", "2024-01-01T00:00:00.000Z"),
    ],
)
def test_timestamps_compare_as_instants_across_offsets_and_fractions(
    left: str, operator_name: str, right: str
) -> None:
    assert rule_holds({"Variable": "$.t", operator_name: right}, {"t": left})


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-01T00:00:00",
        "2024-01-01t00:00:00Z",
        "2024-01-01T00:00:00z",
        "2024-13-01T00:00:00Z",
        "2024-01-01",
    ],
)
def test_text_that_is_not_an_rfc3339_timestamp_is_no_timestamp(text: str) -> None:
    assert not rule_holds({"Variable": "$.t", "IsTimestamp": True}, {"t": text})
    assert not rule_holds({"Variable": "$.t", "TimestampLessThan": "2099-01-01T00:00:00Z"}, {"t": text})


def test_and_or_not_combine_rules() -> None:
    twenties = {
        "And": [
            {"Variable": "$.value", "NumericGreaterThanEquals": 20},
            {"Variable": "$.value", "NumericLessThan": 30},
        ]
    }
    assert rule_holds(twenties, {"value": 22})
    assert not rule_holds(twenties, {"value": 30})
    either = {"Or": [{"Variable": "$.a", "IsNull": True}, {"Variable": "$.b", "IsString": True}]}
    assert rule_holds(either, {"a": 1, "b": "x"})
    assert rule_holds({"Not": {"Variable": "$.type", "StringEquals": "Private"}}, {"type": "Public"})


def test_and_stops_at_the_first_false_rule_before_a_missing_path() -> None:
    guarded = {"And": [{"Variable": "$.a", "IsPresent": True}, {"Variable": "$.a", "NumericEquals": 1}]}
    assert not rule_holds(guarded, {})


numbers = st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False))


@given(left=numbers, right=numbers)
def test_numeric_less_than_is_the_negation_of_greater_than_equals(left: float, right: float) -> None:
    document = {"a": left, "b": right}
    less = rule_holds({"Variable": "$.a", "NumericLessThanPath": "$.b"}, document)
    assert less is not rule_holds({"Variable": "$.a", "NumericGreaterThanEqualsPath": "$.b"}, document)


@given(value=st.one_of(st.none(), st.booleans(), numbers, st.text(), st.lists(st.integers())))
def test_exactly_one_type_test_holds_for_any_scalar_or_list(value: Any) -> None:
    held = [
        name
        for name in ("IsNull", "IsBoolean", "IsNumeric", "IsString")
        if rule_holds({"Variable": "$.v", name: True}, {"v": value})
    ]
    assert len(held) == (0 if isinstance(value, list) else 1)


# ---------------------------------------------------------------------------------------
# JSONata rules.


def _conditions(results: dict[str, Any]) -> Any:
    return lambda condition: results[condition]


def test_a_literal_boolean_condition_needs_no_evaluation() -> None:
    state = {"Choices": [{"Condition": False, "Next": "A"}, {"Condition": True, "Next": "B"}]}
    assert choose_by_condition(state, _conditions({})) == "B"


def test_a_jsonata_choice_takes_the_first_true_condition_else_the_default() -> None:
    state = {"Choices": [{"Condition": "{% $x > 1 %}", "Next": "Big"}], "Default": "Small"}
    assert choose_by_condition(state, _conditions({"{% $x > 1 %}": True})) == "Big"
    assert choose_by_condition(state, _conditions({"{% $x > 1 %}": False})) == "Small"


def test_a_condition_that_is_not_boolean_is_a_query_evaluation_error() -> None:
    state = {"Choices": [{"Condition": "{% $count %}", "Next": "A"}], "Default": "B"}
    with pytest.raises(StatesError) as failure:
        choose_by_condition(state, _conditions({"{% $count %}": {"n": 1}}))
    assert failure.value.error == "States.QueryEvaluationError"
    assert failure.value.cause == (
        "The JSONata expression '$count' specified for the field 'Condition' returned an unexpected "
        "result type. Expected 'boolean', but was 'object' for value: {\"n\":1}"
    )


def test_a_condition_that_returns_nothing_says_so() -> None:
    state = {"Choices": [{"Condition": "{% $nothing %}", "Next": "A"}]}
    with pytest.raises(StatesError, match=r"returned nothing \(undefined\)"):
        choose_by_condition(state, _conditions({"{% $nothing %}": None}))


def test_a_jsonata_choice_with_no_match_and_no_default_fails_like_jsonpath() -> None:
    with pytest.raises(StatesError, match="does not point to a next state"):
        choose_by_condition({"Choices": [{"Condition": False, "Next": "A"}]}, _conditions({}))


# ---------------------------------------------------------------------------------------
# Static validation.

WHERE = "/States/Check/Choices/0"


def problems_of(rule: Any) -> dict[str, str]:
    return {problem.where: problem.message for problem in check_rule(rule, WHERE)}


@pytest.mark.parametrize(
    "rule",
    [
        {"Variable": "$.n", "NumericEquals": 1, "Next": "A"},
        {"Variable": "$.n", "NumericEqualsPath": "$.m", "Next": "A", "Comment": "why"},
        {"Variable": "$.t", "TimestampLessThan": "2024-01-01T00:00:00Z", "Next": "A"},
        {"Variable": "$.s", "StringMatches": "a*", "Next": "A", "Assign": {"x": 1}},
        {"Variable": "$var", "IsPresent": False, "Next": "A"},
        {"Not": {"Variable": "$.a", "IsNull": True}, "Next": "A"},
        {
            "And": [{"Variable": "$.a", "IsString": True}, {"Or": [{"Variable": "$.b", "IsNull": True}]}],
            "Next": "A",
        },
        {"Condition": "{% $x %}", "Next": "A", "Output": {}},
        {"Condition": True, "Next": "A"},
    ],
)
def test_a_valid_rule_has_no_problems(rule: dict[str, Any]) -> None:
    assert check_rule(rule, WHERE) == []


def test_a_comparison_with_the_wrong_operand_type_is_reported_at_the_operator() -> None:
    found = problems_of({"Variable": "$.n", "NumericEquals": "1", "Next": "A"})
    assert list(found) == [f"{WHERE}/NumericEquals"]
    assert "number" in found[f"{WHERE}/NumericEquals"]


@pytest.mark.parametrize(
    ("operator_name", "operand"),
    [
        ("NumericLessThan", True),
        ("StringEquals", 1),
        ("BooleanEquals", "true"),
        ("TimestampEquals", "yesterday"),
        ("IsNull", "yes"),
        ("StringEqualsPath", "b"),
    ],
)
def test_every_kind_of_wrong_operand_is_reported(operator_name: str, operand: Any) -> None:
    rule = {"Variable": "$.v", operator_name: operand, "Next": "A"}
    assert list(problems_of(rule)) == [f"{WHERE}/{operator_name}"]


def test_an_unknown_operator_is_reported_by_name() -> None:
    found = problems_of({"Variable": "$.n", "NumericEqual": 1, "Next": "A"})
    assert "unknown field 'NumericEqual'" in found[f"{WHERE}/NumericEqual"]
    assert "needs a comparison operator" in found[WHERE]


def test_a_comparison_without_variable_is_reported() -> None:
    assert "needs a Variable" in problems_of({"StringEquals": "x", "Next": "A"})[WHERE]


def test_a_variable_that_is_not_a_path_is_reported() -> None:
    assert f"{WHERE}/Variable" in problems_of({"Variable": "n", "IsNull": True, "Next": "A"})


def test_a_top_level_rule_without_next_is_reported() -> None:
    assert "must have a Next" in problems_of({"Variable": "$.n", "IsNull": True})[WHERE]


def test_a_nested_rule_with_next_is_reported_where_it_is() -> None:
    rule = {"Not": {"Variable": "$.n", "IsNull": True, "Next": "B"}, "Next": "A"}
    assert "must not have Next" in problems_of(rule)[f"{WHERE}/Not/Next"]


@pytest.mark.parametrize("operand", [[], {}, "rule", None])
def test_and_or_must_be_a_non_empty_list_of_rules(operand: Any) -> None:
    assert "non-empty list" in problems_of({"And": operand, "Next": "A"})[f"{WHERE}/And"]
    assert "non-empty list" in problems_of({"Or": operand, "Next": "A"})[f"{WHERE}/Or"]


def test_not_must_be_a_rule_object() -> None:
    assert (
        "JSON object"
        in problems_of({"Not": [{"Variable": "$.a", "IsNull": True}], "Next": "A"})[f"{WHERE}/Not"]
    )


def test_problems_inside_nested_rules_carry_their_full_pointer() -> None:
    rule = {
        "Or": [{"Variable": "$.a", "IsNull": True}, {"Variable": "$.b", "NumericGreaterThan": "x"}],
        "Next": "A",
    }
    assert list(problems_of(rule)) == [f"{WHERE}/Or/1/NumericGreaterThan"]


def test_two_operators_in_one_rule_are_reported() -> None:
    found = problems_of({"Variable": "$.a", "IsNull": True, "IsString": True, "Next": "A"})
    assert "exactly one operator" in found[WHERE]


def test_a_rule_that_is_not_an_object_is_reported() -> None:
    assert "JSON object" in problems_of("StringEquals")[WHERE]


def test_a_jsonata_condition_that_is_neither_expression_nor_boolean_is_reported() -> None:
    found = problems_of({"Condition": "$x > 1", "Variable": "$.x", "Next": "A"})
    assert set(found) == {f"{WHERE}/Condition", f"{WHERE}/Variable"}


def test_field_names_are_escaped_in_json_pointers() -> None:
    assert f"{WHERE}/a~1b~0c" in problems_of({"Variable": "$.a", "IsNull": True, "a/b~c": 1, "Next": "A"})
