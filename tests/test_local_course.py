"""A local run against the same execution driven one event at a time.

The local runner hands the core its events as they come (``InProcess``), so a whole
execution runs in one call and a task whose report would be delivered next runs at once.
The orchestrator drives the core one event at a time. Both must give the same result and
the same history, event for event: ids, previous ids, timestamps and details included.
Every recorded conformance case is run both ways.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from orchestrator.asl.definition import StateMachine
from orchestrator.asl.engine import RUNNING, advance, start_execution
from orchestrator.asl.errors import DefinitionError
from orchestrator.asl.history import history_events
from orchestrator.local import LocalRunner, VirtualCourse
from tests.conformance.cases import CASES, CONFORMANCE, FUNCTIONS, load_cases

START = 1_700_000_000.0
# Functions whose results differ from one call to the next cannot give equal runs; UUIDs
# (a failed function's request id, States.UUID) are compared by shape only.
_RANDOM = ("States.MathRandom", "$random(")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _comparable(*values: Any) -> str:
    return _UUID.sub("<uuid>", json.dumps(values))


def _runnable_deterministic_cases() -> list[dict[str, Any]]:
    """The cases whose definitions are valid (an invalid one never runs) and give one result."""
    if not CASES.is_dir():
        return []
    cases = []
    for case in load_cases():
        if any(name in json.dumps(case["definition"]) for name in _RANDOM):
            continue
        try:
            StateMachine.parse(case["definition"])
        except DefinitionError:
            continue
        cases.append(case)
    return cases


def step_by_step(
    machine: StateMachine, functions: dict[str, Any], input: Any, name: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The execution driven as the orchestrator drives it: a call of the core per event."""
    course = VirtualCourse(LocalRunner(machine, functions), START)
    step = start_execution(machine, name, input, START)
    execution, events = step.execution, list(step.events)
    while execution["status"] == RUNNING:
        coming = course.next_event(step.actions)
        if coming is None:
            break
        now, event = coming
        step = advance(machine, execution, event, now)
        events += step.events
    return execution, history_events(events)


CASES_BOTH_WAYS = _runnable_deterministic_cases()


@pytest.mark.skipif(not CASES.is_dir(), reason=f"the conformance cases are not at {CONFORMANCE}")
def test_the_cases_are_there_to_compare() -> None:
    assert len(CASES_BOTH_WAYS) > 500


@pytest.mark.parametrize("case", CASES_BOTH_WAYS, ids=lambda case: case["id"])
def test_a_local_run_equals_the_run_driven_one_event_at_a_time(case: dict[str, Any]) -> None:
    machine = StateMachine.parse(case["definition"], name="M")
    local = LocalRunner(machine, FUNCTIONS).run(case["input"], name="e", start=START)
    execution, history = step_by_step(machine, FUNCTIONS, case["input"], "e")
    assert _comparable(local.status, local.output, local.error, local.cause) == _comparable(
        execution["status"], execution["output"], execution["error"], execution["cause"]
    )
    assert _comparable(local.history) == _comparable(history)


def test_tasks_in_parallel_branches_interleave_as_they_do_one_event_at_a_time() -> None:
    definition = {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Branches": [
                    {
                        "StartAt": f"T{branch}",
                        "States": {
                            f"T{branch}": {"Type": "Task", "Resource": "double", "Next": f"U{branch}"},
                            f"U{branch}": {"Type": "Task", "Resource": "double", "End": True},
                        },
                    }
                    for branch in range(3)
                ],
                "End": True,
            }
        },
    }
    functions = {"double": lambda event, context: event * 2}
    machine = StateMachine.parse(definition, "M")
    local = LocalRunner(machine, functions).run(1, name="e", start=START)
    _, history = step_by_step(machine, functions, 1, "e")
    assert local.output == [4, 4, 4]
    assert local.history == history
    scheduled = [event["id"] for event in local.history if event["type"] == "LambdaFunctionScheduled"]
    succeeded = [event["id"] for event in local.history if event["type"] == "LambdaFunctionSucceeded"]
    # Every branch schedules its first task before any task's result comes back.
    assert scheduled[2] < succeeded[0]
