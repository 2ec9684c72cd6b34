"""Definition validation: every problem reported with its JSON path, before anything runs."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.asl.definition import StateMachine
from orchestrator.asl.errors import DefinitionError
from orchestrator.asl.validation import validate


def where(definition: Any) -> set[str]:
    return {problem.where for problem in validate(definition)}


def test_a_valid_definition_has_no_problems() -> None:
    definition = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "Parameters": {"x.$": "States.Format('{}', $.a)"}, "Next": "B"},
            "B": {
                "Type": "Task",
                "Resource": "ValidateDragon",
                "Retry": [{"ErrorEquals": ["States.ALL"]}],
                "End": True,
            },
        },
    }
    assert validate(definition) == []


def test_a_next_that_names_nothing_is_reported_where_it_stands() -> None:
    definition = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}}
    assert "/States/A/Next" in where(definition)


def test_unknown_types_unknown_fields_and_unreachable_states_are_each_reported() -> None:
    definition = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "Colour": "red", "End": True},
            "B": {"Type": "Teleport", "End": True},
            "C": {"Type": "Succeed"},
        },
    }
    found = where(definition)
    assert {"/States/A/Colour", "/States/B/Type", "/States/C"} <= found


def test_bad_paths_intrinsics_and_jsonata_are_reported() -> None:
    definition = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "InputPath": "$.[", "Parameters": {"x.$": "States.Nope($.a)"}, "Next": "B"},
            "B": {"Type": "Pass", "QueryLanguage": "JSONata", "Output": "{% $states.input. %}", "End": True},
        },
    }
    found = where(definition)
    assert {"/States/A/InputPath", "/States/A/Parameters/x.$", "/States/B/Output"} <= found


def test_retry_and_catch_rules_follow_the_specification() -> None:
    definition = {
        "StartAt": "A",
        "States": {
            "A": {
                "Type": "Task",
                "Resource": "f",
                "Retry": [{"ErrorEquals": ["States.ALL", "X"], "BackoffRate": 0.5}],
                "Catch": [{"ErrorEquals": [], "Next": "A"}],
                "End": True,
            }
        },
    }
    found = where(definition)
    assert {
        "/States/A/Retry/0/ErrorEquals",
        "/States/A/Retry/0/BackoffRate",
        "/States/A/Catch/0/ErrorEquals",
    } <= found


def test_a_resource_redstep_cannot_run_is_refused() -> None:
    definition = {
        "StartAt": "A",
        "States": {"A": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:putItem", "End": True}},
    }
    assert "/States/A/Resource" in where(definition)


def test_problems_inside_parallel_branches_and_map_processors_carry_their_full_path() -> None:
    inner = {"StartAt": "X", "States": {"X": {"Type": "Pass", "Next": "Missing"}}}
    definition = {
        "StartAt": "P",
        "States": {
            "P": {"Type": "Parallel", "Branches": [inner], "Next": "M"},
            "M": {"Type": "Map", "ItemProcessor": inner, "End": True},
        },
    }
    assert {"/States/P/Branches/0/States/X/Next", "/States/M/ItemProcessor/States/X/Next"} <= where(
        definition
    )


def test_parse_refuses_an_invalid_definition_with_every_problem_listed() -> None:
    with pytest.raises(DefinitionError) as raised:
        StateMachine.parse('{"StartAt": "A", "States": {"A": {"Type": "Pass"}, "B": {"Type": "Nope"}}}')
    message = str(raised.value)
    assert "/States/A" in message and "/States/B/Type" in message
    assert len(raised.value.problems) >= 2


def test_text_that_is_not_json_is_refused_clearly() -> None:
    with pytest.raises(DefinitionError, match="not valid JSON"):
        StateMachine.parse("{not json")


@pytest.mark.parametrize("bad", [False, True, [], [1], 3, {"a": 1}])
def test_a_result_path_that_is_not_a_string_or_null_is_refused_where_it_stands(bad: object) -> None:
    definition = {
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": "arn:aws:lambda:us-east-1:000000000000:function:F",
                "ResultPath": bad,
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": bad, "Next": "Done"}],
                "End": True,
            },
            "Done": {"Type": "Succeed"},
        },
    }
    messages = {str(problem) for problem in validate(definition)}
    assert any("/States/T/ResultPath" in m and "path string, or null" in m for m in messages), messages
    assert any("/States/T/Catch/0/ResultPath" in m and "path string, or null" in m for m in messages), (
        messages
    )


@pytest.mark.parametrize("language", [[], {"JSONata": True}, "jsonata", 7])
def test_a_query_language_that_is_not_one_of_the_two_names_is_reported_at_the_top_and_on_a_state(
    language: Any,
) -> None:
    top = {"QueryLanguage": language, "StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}
    state = {"StartAt": "A", "States": {"A": {"Type": "Pass", "QueryLanguage": language, "End": True}}}

    assert "/QueryLanguage" in where(top)
    assert "/States/A/QueryLanguage" in where(state)
