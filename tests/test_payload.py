"""Input and output processing of JSONPath states: InputPath, templates, ResultPath, OutputPath.

The second half replays AWS-recorded executions of Pass-state chains through a tiny runner
made of these functions alone, and compares with what AWS answered.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from orchestrator.asl.errors import (
    DATA_LIMIT_EXCEEDED,
    RESULT_PATH_MATCH_FAILURE,
    RUNTIME,
    PathNotFound,
    StatesError,
)
from orchestrator.asl.payload import (
    Scope,
    fill_template,
    merge_result,
    resolve_path,
    select_input,
    select_output,
)

CONTEXT = {
    "Execution": {"Id": "arn:aws:states:us-east-1:1:execution:m:e", "Input": {"k": 1}, "Name": "e"},
    "State": {"Name": "S", "EnteredTime": "2024-01-01T00:00:00.000Z"},
}


def scope_of(document: Any, **variables: Any) -> Scope:
    return Scope(document, CONTEXT, variables)


# ---------------------------------------------------------------------------- resolve_path


def test_a_dollar_path_reads_the_input() -> None:
    assert resolve_path("$.a.b", scope_of({"a": {"b": 7}})) == 7


def test_a_double_dollar_path_reads_the_context_object() -> None:
    assert resolve_path("$$.Execution.Name", scope_of({})) == "e"
    assert resolve_path("$$", scope_of({})) is CONTEXT


def test_a_named_dollar_path_reads_a_workflow_variable() -> None:
    scope = scope_of({"x": 0}, order={"items": [10, 20]})
    assert resolve_path("$order", scope) == {"items": [10, 20]}
    assert resolve_path("$order.items[1]", scope) == 20


def test_an_unknown_variable_is_not_found() -> None:
    with pytest.raises(PathNotFound):
        resolve_path("$nobody.x", scope_of({}))


# ---------------------------------------------------------------------------- InputPath / OutputPath


def test_input_path_dollar_passes_the_input_through_unchanged() -> None:
    document = {"a": 1}
    assert select_input("$", document, scope_of(document)) is document


def test_input_path_null_gives_an_empty_object() -> None:
    assert select_input(None, {"a": 1}, scope_of({"a": 1})) == {}


def test_input_path_selects_part_of_the_input() -> None:
    document = {"a": {"b": [1, 2]}}
    assert select_input("$.a.b", document, scope_of(document)) == [1, 2]


def test_input_path_may_select_the_context_object() -> None:
    assert select_input("$$.State.Name", {}, scope_of({})) == "S"


def test_input_path_that_selects_nothing_fails_with_aws_wording() -> None:
    with pytest.raises(StatesError) as failure:
        select_input("$.NoSuchInputPath", {"int-literal": 0}, scope_of({"int-literal": 0}))
    assert failure.value.error == RUNTIME
    assert (
        failure.value.cause == "Invalid path '$.NoSuchInputPath' : No results for path: $['NoSuchInputPath']"
    )


def test_output_path_null_gives_an_empty_object() -> None:
    assert select_output(None, {"a": 1}, scope_of({})) == {}


def test_output_path_selects_from_the_value_not_from_the_scope_input() -> None:
    assert select_output("$.r", {"r": 5}, scope_of({"r": "state input"})) == 5


def test_output_path_through_a_missing_object_names_the_missing_property() -> None:
    with pytest.raises(StatesError) as failure:
        select_output("$.no.such.result.path", {}, scope_of({}))
    assert failure.value.error == RUNTIME
    assert failure.value.cause == ("Invalid path '$.no.such.result.path' : Missing property in path $['no']")


def test_an_indefinite_output_path_that_matches_nothing_gives_an_empty_list() -> None:
    assert select_output("$.items[*]", {}, scope_of({})) == []


# ---------------------------------------------------------------------------- templates


def test_template_keys_ending_in_dollar_take_the_value_of_their_path() -> None:
    document = {"name": "Smaug", "age": 171}
    filled = fill_template({"who.$": "$.name", "years.$": "$.age", "kind": "dragon"}, scope_of(document))
    assert filled == {"who": "Smaug", "years": 171, "kind": "dragon"}


def test_template_objects_and_arrays_are_filled_recursively() -> None:
    template = {"outer": {"inner.$": "$.a", "list": [{"x.$": "$.b"}, 3, "s"]}}
    assert fill_template(template, scope_of({"a": 1, "b": 2})) == {
        "outer": {"inner": 1, "list": [{"x": 2}, 3, "s"]}
    }


def test_template_keeps_the_order_of_its_keys() -> None:
    filled = fill_template({"z": 1, "a.$": "$.v", "m": 2}, scope_of({"v": 0}))
    assert list(filled) == ["z", "a", "m"]


def test_template_reads_context_and_variables() -> None:
    filled = fill_template({"state.$": "$$.State.Name", "v.$": "$count"}, scope_of({}, count=3))
    assert filled == {"state": "S", "v": 3}


def test_template_does_not_modify_the_template_or_the_input() -> None:
    template = {"a": {"b.$": "$.x"}}
    document = {"x": [1]}
    fill_template(template, scope_of(document))
    assert template == {"a": {"b.$": "$.x"}}
    assert document == {"x": [1]}


def test_template_strings_without_the_suffix_are_literals_even_when_they_look_like_paths() -> None:
    assert fill_template({"p": "$.a", "q": "States.Format('x')"}, scope_of({"a": 1})) == {
        "p": "$.a",
        "q": "States.Format('x')",
    }


def test_template_path_that_selects_nothing_fails_with_aws_wording() -> None:
    with pytest.raises(StatesError) as failure:
        fill_template({"value.$": "$.no_such_jsonpath"}, scope_of({"int-literal": 0}))
    assert failure.value.error == RUNTIME
    assert failure.value.cause == (
        "The JSONPath '$.no_such_jsonpath' specified for the field 'value.$' "
        "could not be found in the input '{\"int-literal\":0}'"
    )


def test_template_path_over_a_null_input_fails_as_aws_does() -> None:
    with pytest.raises(StatesError) as failure:
        fill_template({"x.$": "$.scenario"}, scope_of(None))
    assert failure.value.cause == "Unable to apply Path transformation to null or empty input."


def test_template_value_with_the_suffix_must_be_a_path_or_an_intrinsic_call() -> None:
    with pytest.raises(StatesError) as failure:
        fill_template({"x.$": 5}, scope_of({}))
    assert failure.value.error == RUNTIME
    assert "'x.$'" in (failure.value.cause or "")


def test_template_evaluates_intrinsic_calls_with_paths_from_the_scope() -> None:
    filled = fill_template({"greeting.$": "States.Format('Hello, {}!', $.name)"}, scope_of({"name": "Smaug"}))
    assert filled == {"greeting": "Hello, Smaug!"}


# ---------------------------------------------------------------------------- ResultPath


def test_result_path_dollar_makes_the_result_the_output() -> None:
    result = {"r": 1}
    assert merge_result("$", {"in": 0}, result) is result


def test_result_path_null_keeps_the_input_and_discards_the_result() -> None:
    document = {"in": 0}
    assert merge_result(None, document, {"r": 1}) is document


def test_result_path_places_the_result_inside_a_copy_of_the_input() -> None:
    document = {"in": 0, "deep": {"keep": True}}
    merged = merge_result("$.deep.result", document, 42)
    assert merged == {"in": 0, "deep": {"keep": True, "result": 42}}
    assert document == {"in": 0, "deep": {"keep": True}}


def test_result_path_creates_the_objects_on_its_way() -> None:
    assert merge_result("$.a.b.c", {}, 1) == {"a": {"b": {"c": 1}}}


def test_result_path_replaces_an_existing_value_in_place() -> None:
    merged = merge_result("$.a", {"a": 1, "b": 2}, 3)
    assert list(merged.items()) == [("a", 3), ("b", 2)]


def test_result_path_may_replace_an_existing_array_element() -> None:
    assert merge_result("$.list[1]", {"list": [1, 2, 3]}, "x") == {"list": [1, "x", 3]}


def test_result_path_into_something_that_is_not_an_object_fails() -> None:
    with pytest.raises(StatesError) as failure:
        merge_result("$.a.b", {"a": "text"}, 1)
    assert failure.value.error == RESULT_PATH_MATCH_FAILURE


def test_result_path_into_an_input_that_is_not_an_object_fails() -> None:
    with pytest.raises(StatesError) as failure:
        merge_result("$.r", [1, 2], 1)
    assert failure.value.error == RESULT_PATH_MATCH_FAILURE


# ---------------------------------------------------------------------------- AWS-recorded Pass chains

CASES = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "cases"
PASS_FIELDS = {
    "Type",
    "Next",
    "End",
    "Comment",
    "InputPath",
    "Parameters",
    "ResultPath",
    "OutputPath",
    "Result",
}


def _speaks_jsonpath_only(definition: dict[str, Any]) -> bool:
    states = definition.get("States", {}).values()
    return definition.get("QueryLanguage", "JSONPath") == "JSONPath" and all(
        state.get("QueryLanguage", "JSONPath") == "JSONPath" for state in states
    )


def _is_pass_chain(case: dict[str, Any]) -> bool:
    """Pass states using only the processing fields, where AWS did not stop on a payload size.

    Payload size limits are checked by the engine around a state, not by input/output processing.
    """
    definition = case["definition"]
    states = definition.get("States", {}).values()
    return (
        _speaks_jsonpath_only(definition)
        and all(state.get("Type") == "Pass" and set(state) <= PASS_FIELDS for state in states)
        and case["expected"].get("error") != DATA_LIMIT_EXCEEDED
    )


def _pass_chain_cases() -> list[Any]:
    if not CASES.is_dir():
        return []
    cases = (json.loads(path.read_text(encoding="utf-8")) for path in sorted(CASES.glob("*/*.json")))
    return [pytest.param(case, id=case["id"]) for case in cases if _is_pass_chain(case)]


@functools.cache
def _checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("conformance_check", CASES.parent / "check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _context(case: dict[str, Any], state_name: str) -> dict[str, Any]:
    machine = "arn:aws:states:us-east-1:111111111111:stateMachine:machine"
    return {
        "Execution": {
            "Id": "arn:aws:states:us-east-1:111111111111:execution:machine:run",
            "Input": case["input"],
            "StartTime": "2024-01-01T00:00:00.000Z",
            "Name": "run",
            "RoleArn": "arn:aws:iam::111111111111:role/role",
            "RedriveCount": 0,
        },
        "StateMachine": {"Id": machine, "Name": "machine"},
        "State": {"Name": state_name, "EnteredTime": "2024-01-01T00:00:00.000Z"},
    }


def _run_pass_state(state: dict[str, Any], state_input: Any, context: dict[str, Any]) -> Any:
    scope = Scope(state_input, context, {})
    selected = select_input(state.get("InputPath", "$"), state_input, scope)
    if "Parameters" in state:
        selected = fill_template(state["Parameters"], Scope(selected, context, {}))
    result = state.get("Result", selected)
    merged = merge_result(state.get("ResultPath", "$"), state_input, result)
    return select_output(state.get("OutputPath", "$"), merged, Scope(merged, context, {}))


def _outcome(
    status: str, output: Any, error: str | None, cause: str | None, history: list[Any]
) -> dict[str, Any]:
    return {"status": status, "output": output, "error": error, "cause": cause, "history": history}


def run_pass_chain(case: dict[str, Any]) -> dict[str, Any]:
    """Run a Pass-only definition the way the engine would, recording (type, name) history."""
    definition = case["definition"]
    history: list[dict[str, Any]] = [{"type": "ExecutionStarted"}]
    name, document = definition["StartAt"], case["input"]
    while True:
        state = definition["States"][name]
        history.append({"type": "PassStateEntered", "name": name})
        entered_at = len(history)
        try:
            document = _run_pass_state(state, document, _context(case, name))
        except StatesError as failure:
            history.append({"type": "ExecutionFailed"})
            where = f"the state '{name}' (entered at the event id #{entered_at})"
            cause = f"An error occurred while executing {where}. {failure.cause or ''}"
            return _outcome("FAILED", None, failure.error, cause, history)
        history.append({"type": "PassStateExited", "name": name})
        if state.get("End"):
            history.append({"type": "ExecutionSucceeded"})
            return _outcome("SUCCEEDED", document, None, None, history)
        name = state["Next"]


@pytest.mark.skipif(not CASES.is_dir(), reason="../shared/conformance/cases is not present next to the repo")
@pytest.mark.parametrize("case", _pass_chain_cases())
def test_pass_chain_behaves_as_aws_recorded(case: dict[str, Any]) -> None:
    problems = _checker().check_case(
        case, run_pass_chain(case), {"loose_numbers": False, "history": True, "output_is_json_text": False}
    )
    assert problems == []
