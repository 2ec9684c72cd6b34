"""Hostile state machine definitions: refused with every problem and its JSON path, or run to an end.

Random JSON, random text and mutations of real definitions (the shipped pipeline and the
AWS-recorded conformance cases) go through ``StateMachine.parse``; whatever is accepted is
run by the local runner. Nothing may raise anything but DefinitionError, and nothing
accepted may make the engine raise instead of ending the execution.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.asl.definition import StateMachine
from orchestrator.asl.errors import DefinitionError
from orchestrator.asl.validation import MAX_NESTING
from orchestrator.local import LocalRunner

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SHIPPED = Path(__file__).parent.parent / "orchestrator" / "state_machines" / "dragon_pipeline.asl.json"
CONFORMANCE = Path(__file__).parent.parent.parent / "shared" / "conformance" / "cases"
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)
asl_words = st.sampled_from(
    ["StartAt", "States", "Type", "Next", "End", "Pass", "Task", "Choice", "Parallel", "Map", "Branches",
     "Resource", "Parameters", "InputPath", "ResultPath", "$", "$.a", "States.Format('{}', $.a)"]
)  # fmt: skip
asl_shaped = st.recursive(
    json_scalars | asl_words,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(asl_words, children, max_size=4),
    max_leaves=25,
)


def real_definitions() -> list[dict[str, Any]]:
    """The shipped pipeline and a spread of recorded definitions, each of them valid."""
    found = [json.loads(SHIPPED.read_text())]
    if CONFORMANCE.is_dir():
        cases = sorted(CONFORMANCE.glob("*/*.json"))
        found += [json.loads(path.read_text())["definition"] for path in cases[::12]]
    return [definition for definition in found if isinstance(definition, dict)]


REAL = real_definitions()


def parse_or_problems(definition: Any) -> StateMachine | DefinitionError:
    """The parsed machine, or the DefinitionError; any other exception fails the test."""
    try:
        return StateMachine.parse(definition)
    except DefinitionError as error:
        return error


def assert_well_formed(error: DefinitionError) -> None:
    assert error.problems
    for problem in error.problems:
        assert problem.where.startswith("/") and problem.message


@FAST
@given(json_values | asl_shaped)
def test_any_json_value_as_a_definition_is_parsed_or_refused_with_located_problems(definition: Any) -> None:
    result = parse_or_problems(definition)

    if isinstance(result, DefinitionError):
        assert_well_formed(result)


@FAST
@given(st.text(max_size=200))
def test_any_text_as_a_definition_is_parsed_or_refused_with_a_definition_error(text: str) -> None:
    result = parse_or_problems(text)

    if isinstance(result, DefinitionError):
        assert_well_formed(result)


def paths_of(value: Any, where: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [where]
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths_of(child, (*where, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths_of(child, (*where, index))
    return found


def mutate(definition: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    """A copy of ``definition`` with one node deleted, replaced, or pointed at another state."""
    mutated = copy.deepcopy(definition)
    where = data.draw(st.sampled_from(paths_of(mutated)[1:]))
    parent = mutated
    for key in where[:-1]:
        parent = parent[key]
    names = [name for name in definition.get("States", {})] or ["Nowhere"]
    action = data.draw(st.sampled_from(["delete", "replace", "rename", "retype"]))
    if action == "delete":
        del parent[where[-1]]
    elif action == "replace":
        parent[where[-1]] = data.draw(json_values | asl_words)
    elif action == "rename":
        parent[where[-1]] = data.draw(st.sampled_from(names))
    else:
        parent[where[-1]] = data.draw(st.sampled_from(["Pass", "Task", "Choice", "Wait", "Map", "Bogus"]))
    return mutated


class RunawayExecution(BaseException):
    """Raised by a test function that was called too often: the execution loops by retrying."""


def answering(output: Any) -> Any:
    calls = [0]

    def function(event: Any, context: Any) -> Any:
        calls[0] += 1
        if calls[0] > 50:
            raise RunawayExecution
        return output

    return function


def has_cycle(body: Any) -> bool:
    """Whether a body's transitions (Next, Default, Choices, Catch) loop; retries are counted apart."""
    states = body.get("States") if isinstance(body, dict) else None
    if not isinstance(states, dict):
        return False
    edges = {name: _targets(state) for name, state in states.items()}
    visiting, done = set(), set()

    def visit(name: str) -> bool:
        if name in visiting:
            return True
        if name in done or name not in edges:
            return False
        visiting.add(name)
        looped = any(visit(target) for target in edges[name])
        visiting.discard(name)
        done.add(name)
        return looped

    nested = [
        child
        for state in states.values()
        if isinstance(state, dict)
        for child in [*(state.get("Branches") or []), state.get("ItemProcessor"), state.get("Iterator")]
    ]
    return any(visit(name) for name in edges) or any(has_cycle(child) for child in nested)


def _targets(state: Any) -> list[str]:
    if not isinstance(state, dict):
        return []
    rules = [*(state.get("Choices") or []), *(state.get("Catch") or [])]
    found = [state.get("Next"), state.get("Default"), *(r.get("Next") for r in rules if isinstance(r, dict))]
    return [target for target in found if isinstance(target, str)]


@FAST
@given(definition=st.sampled_from(REAL), data=st.data(), output=json_values, input=json_values)
def test_a_mutated_real_definition_is_refused_with_located_problems_or_runs_to_an_end(
    definition: dict[str, Any], data: st.DataObject, output: Any, input: Any
) -> None:
    mutated = mutate(definition, data)

    result = parse_or_problems(mutated)

    if isinstance(result, DefinitionError):
        assert_well_formed(result)
        return
    functions = {name: answering(output) for name in ("ValidateDragon", "AddDragon", "f", "lambda")}
    try:
        outcome = LocalRunner(result, functions).run(input, start=0.0)
    except RunawayExecution:
        return
    assert outcome.status in TERMINAL


def nested_values(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def nested_objects(key: str, levels: int, leaf: dict[str, Any]) -> dict[str, Any]:
    value = leaf
    for _ in range(levels):
        value = {key: value}
    return value


def nested_branches(levels: int) -> dict[str, Any]:
    body: dict[str, Any] = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}
    for _ in range(levels):
        body = {"StartAt": "P", "States": {"P": {"Type": "Parallel", "Branches": [body], "End": True}}}
    return body


def pass_state(**fields: Any) -> dict[str, Any]:
    return {"StartAt": "A", "States": {"A": {"Type": "Pass", **fields, "End": True}}}


@pytest.mark.parametrize(
    "definition",
    [
        pass_state(Parameters=nested_objects("a", 100_000, {"b": 1})),
        pass_state(Result=nested_values(100_000)),
        nested_branches(3_000),
        {
            "StartAt": "C",
            "States": {
                "C": {
                    "Type": "Choice",
                    "Choices": [{**nested_objects("Not", 100_000, {"Variable": "$.a", "IsPresent": True}),
                                 "Next": "D"}],
                },
                "D": {"Type": "Succeed"},
            },
        },
        {"QueryLanguage": "JSONata", **pass_state(Output=nested_objects("a", 100_000, {"b": "{% 1 %}"}))},
    ],
    ids=["parameters", "result", "parallel-branches", "choice-not", "jsonata-output"],
)  # fmt: skip
def test_a_definition_nested_100000_levels_deep_is_refused_naming_where_it_is_too_deep(
    definition: dict[str, Any],
) -> None:
    with pytest.raises(DefinitionError) as caught:
        StateMachine.parse(definition)

    [problem] = caught.value.problems
    assert f"nests deeper than {MAX_NESTING} levels" in problem.message
    assert problem.where.startswith("/States/")


def test_a_definition_as_deep_as_allowed_still_runs() -> None:
    machine = StateMachine.parse(nested_branches((MAX_NESTING - 2) // 5))

    outcome = LocalRunner(machine).run({"x": 1})

    assert outcome.status == "SUCCEEDED"


def test_a_definition_text_nested_100000_levels_deep_is_refused_with_a_definition_error() -> None:
    with pytest.raises(DefinitionError):
        StateMachine.parse("[" * 100_000 + "]" * 100_000)


def test_a_fail_state_whose_error_path_selects_nothing_fails_the_execution_with_states_runtime() -> None:
    machine = StateMachine.parse({"StartAt": "F", "States": {"F": {"Type": "Fail", "ErrorPath": "$.Error"}}})

    outcome = LocalRunner(machine).run({})

    assert (outcome.status, outcome.error) == ("FAILED", "States.Runtime")


@pytest.mark.parametrize(
    ("field", "value"),
    [("ErrorPath", None), ("CausePath", 7), ("ErrorPath", "States.Nope($.a)"), ("CausePath", "$$$")],
)
def test_a_fail_state_with_an_unusable_error_or_cause_path_is_refused_at_parse(
    field: str, value: Any
) -> None:
    with pytest.raises(DefinitionError) as caught:
        StateMachine.parse({"StartAt": "F", "States": {"F": {"Type": "Fail", field: value}}})

    assert [problem.where for problem in caught.value.problems] == [f"/States/F/{field}"]


@pytest.mark.parametrize("target", [["A"], {"A": 1}, 7])
def test_a_transition_to_a_list_or_object_is_refused_as_naming_no_state(target: Any) -> None:
    definition = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": target}, "B": {"Type": "Succeed"}}}

    with pytest.raises(DefinitionError) as caught:
        StateMachine.parse(definition)

    assert "/States/A/Next" in {problem.where for problem in caught.value.problems}


def test_a_map_state_whose_items_path_selects_nothing_fails_the_execution_with_states_runtime() -> None:
    machine = StateMachine.parse(
        {
            "StartAt": "M",
            "States": {
                "M": {"Type": "Map", "ItemsPath": "$.Items", "ItemProcessor": pass_state(), "End": True}
            },
        }
    )

    outcome = LocalRunner(machine).run({})

    assert (outcome.status, outcome.error) == ("FAILED", "States.Runtime")


@pytest.mark.parametrize("state_type", [["Pass"], {"Pass": 1}])
def test_a_state_whose_type_is_a_list_or_object_is_refused_as_unknown(state_type: Any) -> None:
    with pytest.raises(DefinitionError) as caught:
        StateMachine.parse({"StartAt": "A", "States": {"A": {"Type": state_type, "End": True}}})

    assert [problem.where for problem in caught.value.problems] == ["/States/A/Type"]


@pytest.mark.parametrize("config", ["StartAt", ["INLINE"], 1])
def test_a_map_whose_processor_config_is_not_an_object_is_refused(config: Any) -> None:
    processor = {**pass_state(), "ProcessorConfig": config}
    definition = {"StartAt": "M", "States": {"M": {"Type": "Map", "Iterator": processor, "End": True}}}

    with pytest.raises(DefinitionError) as caught:
        StateMachine.parse(definition)

    assert [problem.where for problem in caught.value.problems] == ["/States/M/Iterator/ProcessorConfig"]
