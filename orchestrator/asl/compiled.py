"""A state read once, when its machine is parsed, into the facts the engine asks at every step.

Entering a state then costs one lookup instead of a dozen probes of its definition: what
comes next, which event names it records, whether its input and result pass through
unchanged (no InputPath, Parameters, ResultSelector, ResultPath or OutputPath to apply),
and, for a Task, what its Resource names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.asl.choice_rules import CompiledChoices, compile_choices
from orchestrator.asl.json_values import NO_BOUND
from orchestrator.asl.resources import Resource, parse_resource

_TIMER_FIELDS = ("TimeoutSeconds", "TimeoutSecondsPath", "HeartbeatSeconds", "HeartbeatSecondsPath")


@dataclass(frozen=True, slots=True)
class CompiledState:
    """One state of a machine, with what its definition says worked out in advance.

    Attributes:
        name: the state's name.
        type: its ``Type`` ("Pass", "Task", ...).
        definition: the state's definition as written.
        jsonata: whether the state speaks JSONata (its own or its scope's QueryLanguage).
        next: the state its ``Next`` names, or None.
        end: whether it is an End state.
        entered_event: the history event that enters it ("PassStateEntered").
        exited_event: the history event that leaves it ("PassStateExited").
        input_path: its InputPath, ``"$"`` when absent (None is JSON null).
        result_path: its ResultPath, ``"$"`` when absent.
        output_path: its OutputPath, ``"$"`` when absent.
        input_as_is: whether its effective input is its raw input (no InputPath or
            Parameters in JSONPath; no Arguments in JSONata).
        result_as_is: whether its output is its result once a selector is applied (no
            ResultPath or OutputPath in JSONPath; no Output in JSONata).
        assign: its ``Assign`` block, or None.
        resource: what a Task's Resource names; None for other states, or for a Resource
            that cannot run (entering the state then reports why).
        has_timers: whether a Task sets a timeout or a heartbeat, as a number or a path.
        passes_through: whether it is a Pass state whose output is its input, with no
            variables to assign.
        choices: a JSONPath Choice state's rules, compiled, each with its Next; else None.
        merge_room: when its output is its input with the result put in by ResultPath
            alone (JSONPath; no ResultSelector or OutputPath), the most characters the path
            adds to theirs (its keys and the objects made for them); else ``NO_BOUND``. An
            output's ``payload_bound`` is then theirs and this added up, with no walk.
    """

    name: str
    type: str
    definition: dict[str, Any]
    jsonata: bool
    next: str | None
    end: bool
    entered_event: str
    exited_event: str
    input_path: Any
    result_path: Any
    output_path: Any
    input_as_is: bool
    result_as_is: bool
    assign: Any
    resource: Resource | None
    has_timers: bool
    passes_through: bool
    choices: CompiledChoices | None
    merge_room: int

    @property
    def has_result_selector(self) -> bool:
        return "ResultSelector" in self.definition


def compile_state(name: str, state: dict[str, Any], jsonata: bool) -> CompiledState:
    """Work out once what the engine needs from a state's definition."""
    state_type = state.get("Type", "")
    if jsonata:
        input_as_is = "Arguments" not in state
        result_as_is = "Output" not in state
    else:
        input_as_is = state.get("InputPath", "$") == "$" and "Parameters" not in state
        result_as_is = state.get("ResultPath", "$") == "$" and state.get("OutputPath", "$") == "$"
    return CompiledState(
        name=name,
        type=state_type,
        definition=state,
        jsonata=jsonata,
        next=state.get("Next"),
        end=bool(state.get("End")),
        entered_event=f"{state_type}StateEntered",
        exited_event=f"{state_type}StateExited",
        input_path=state.get("InputPath", "$"),
        result_path=state.get("ResultPath", "$"),
        output_path=state.get("OutputPath", "$"),
        input_as_is=input_as_is,
        result_as_is=result_as_is,
        assign=state.get("Assign"),
        resource=_resource_of(state) if state_type == "Task" else None,
        has_timers=any(field in state for field in _TIMER_FIELDS),
        passes_through=state_type == "Pass"
        and input_as_is
        and result_as_is
        and "Result" not in state
        and "Assign" not in state,
        choices=compile_choices(state.get("Choices")) if state_type == "Choice" and not jsonata else None,
        merge_room=_merge_room(state, jsonata),
    )


def _merge_room(state: dict[str, Any], jsonata: bool) -> int:
    path = state.get("ResultPath", "$")
    if (
        jsonata
        or not isinstance(path, str)
        or "ResultSelector" in state
        or state.get("OutputPath", "$") != "$"
    ):
        return NO_BOUND
    # Each key on the path is shorter than the path, and its quotes, colon, comma and the
    # braces of an object made for it fit in ten more characters.
    return 11 * len(path)


def _resource_of(state: dict[str, Any]) -> Resource | None:
    resource = state.get("Resource")
    if not isinstance(resource, str):
        return None
    try:
        return parse_resource(resource)
    except ValueError:
        return None
