"""The history of a Parallel or Map that fails, is caught, or is nested in another, event for event.

AWS recorded each shape once (../shared/conformance, run in full by test_conformance.py):
a Parallel whose branch fails ends ParallelStateFailed, ExecutionFailed
(test_parallel_state_fail); a caught Parallel goes straight to ParallelStateExited
(test_parallel_catch_error); a Map whose iteration fails records MapIterationFailed then
MapStateFailed, then MapStateExited when it is caught (test_map_state_catch_legacy) or
ExecutionFailed when not (test_map_state_retry_legacy). Nested, each fork records its own
shape as its child's failure reaches it, innermost first.
"""

from __future__ import annotations

from typing import Any

from orchestrator.asl.definition import StateMachine
from orchestrator.local import LocalRunner

FAIL = {"Type": "Fail", "Error": "Boom", "Cause": "bad"}
CATCH_ALL = [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]
CAUGHT = {"Type": "Pass", "End": True}


def failing_map(**fields: Any) -> dict[str, Any]:
    return {"Type": "Map", "ItemProcessor": {"StartAt": "F", "States": {"F": FAIL}}, "End": True, **fields}


def failing_parallel(**fields: Any) -> dict[str, Any]:
    return {"Type": "Parallel", "Branches": [{"StartAt": "F", "States": {"F": FAIL}}], "End": True, **fields}


def history(definition: dict[str, Any], input: Any) -> tuple[str, list[str]]:
    result = LocalRunner(StateMachine.parse(definition, "Forks")).run(input, start=0.0)
    return result.status, [event["type"] for event in result.history]


def test_a_failing_map_inside_a_parallel_that_catches_it() -> None:
    branch = {"StartAt": "M", "States": {"M": failing_map()}}
    parallel = {"Type": "Parallel", "Branches": [branch], "Catch": CATCH_ALL, "End": True}

    assert history({"StartAt": "P", "States": {"P": parallel, "Caught": CAUGHT}}, [1]) == (
        "SUCCEEDED",
        [
            "ExecutionStarted",
            "ParallelStateEntered",
            "ParallelStateStarted",
            "MapStateEntered",
            "MapStateStarted",
            "MapIterationStarted",
            "FailStateEntered",
            "MapIterationFailed",
            "MapStateFailed",
            "ParallelStateExited",
            "PassStateEntered",
            "PassStateExited",
            "ExecutionSucceeded",
        ],
    )


def test_a_failing_parallel_inside_a_map_that_does_not_catch_it() -> None:
    processor = {"StartAt": "P", "States": {"P": failing_parallel()}}
    definition = {"StartAt": "M", "States": {"M": {"Type": "Map", "ItemProcessor": processor, "End": True}}}

    assert history(definition, [1]) == (
        "FAILED",
        [
            "ExecutionStarted",
            "MapStateEntered",
            "MapStateStarted",
            "MapIterationStarted",
            "ParallelStateEntered",
            "ParallelStateStarted",
            "FailStateEntered",
            "ParallelStateFailed",
            "MapIterationFailed",
            "MapStateFailed",
            "ExecutionFailed",
        ],
    )


def test_a_caught_map_exits_after_it_failed() -> None:
    definition = {"StartAt": "M", "States": {"M": failing_map(Catch=CATCH_ALL), "Caught": CAUGHT}}

    assert history(definition, [1]) == (
        "SUCCEEDED",
        [
            "ExecutionStarted",
            "MapStateEntered",
            "MapStateStarted",
            "MapIterationStarted",
            "FailStateEntered",
            "MapIterationFailed",
            "MapStateFailed",
            "MapStateExited",
            "PassStateEntered",
            "PassStateExited",
            "ExecutionSucceeded",
        ],
    )


def test_a_map_that_tolerates_its_failures_succeeds_with_them_in_its_history() -> None:
    definition = {"StartAt": "M", "States": {"M": failing_map(ToleratedFailureCount=2)}}

    assert history(definition, [1, 2]) == (
        "SUCCEEDED",
        [
            "ExecutionStarted",
            "MapStateEntered",
            "MapStateStarted",
            "MapIterationStarted",
            "MapIterationStarted",
            "FailStateEntered",
            "MapIterationFailed",
            "FailStateEntered",
            "MapIterationFailed",
            "MapStateSucceeded",
            "MapStateExited",
            "ExecutionSucceeded",
        ],
    )
