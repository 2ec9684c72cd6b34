"""Parallel branches and Map iterations really run at the same time, on different worker processes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.runtime.server import RedisServer
from tests.conformance.stack import Stack, running_stack, stack_settings

FUNCTIONS = Path(__file__).resolve().with_name("stack_functions.py")
SLEEPER = "arn:aws:lambda:us-east-1:000000000000:function:sleep_and_report"
WAIT_SECONDS = 30.0

PARALLEL = {
    "StartAt": "Both",
    "States": {
        "Both": {
            "Type": "Parallel",
            "Branches": [
                {
                    "StartAt": name,
                    "States": {
                        name: {
                            "Type": "Task",
                            "Resource": SLEEPER,
                            "Parameters": {"seconds": 1, "branch": name},
                            "End": True,
                        }
                    },
                }
                for name in ("A", "B")
            ],
            "End": True,
        }
    },
}

MAP = {
    "StartAt": "Each",
    "States": {
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "MaxConcurrency": 2,
            "ItemSelector": {"seconds": 1, "item.$": "$$.Map.Item.Value"},
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "Sleep",
                "States": {"Sleep": {"Type": "Task", "Resource": SLEEPER, "End": True}},
            },
            "End": True,
        }
    },
}


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One orchestrator and two worker processes, shared by this module's tests."""
    settings, env = stack_settings(redis_server.url, "conc")
    with running_stack(settings, env, [FUNCTIONS], tmp_path_factory.mktemp("workers"), workers=2) as running:
        yield running


def run(stack: Stack, definition: dict[str, Any], input: Any) -> dict[str, Any]:
    """Register ``definition``, run one execution of it, and return how it ended."""
    machine = f"machine-{uuid.uuid4().hex[:8]}"
    stack.client.register_machine(machine, definition)
    name = stack.client.start_execution(machine, input)
    try:
        return stack.client.wait(name, timeout=WAIT_SECONDS)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{stack.logs_tail()}") from None


def overlap(first: dict[str, Any], second: dict[str, Any]) -> bool:
    """Whether two calls' [start, end] intervals share a moment."""
    return max(first["start"], second["start"]) < min(first["end"], second["end"])


def test_parallel_branches_run_at_once_on_different_workers(stack: Stack) -> None:
    """Given two branches that each sleep a second, they ran on two worker processes at the same time."""
    described = run(stack, PARALLEL, {})

    assert described["status"] == "SUCCEEDED", described
    first, second = described["output"]
    assert [first["event"], second["event"]] == [{"seconds": 1, "branch": "A"}, {"seconds": 1, "branch": "B"}]
    assert {first["pid"], second["pid"]} == stack.worker_pids()
    assert overlap(first, second), (first, second)


def test_map_iterations_run_two_at_a_time_on_different_workers(stack: Stack) -> None:
    """Given four items and MaxConcurrency 2, iterations ran in overlapping pairs on both workers."""
    described = run(stack, MAP, {"items": ["a", "b", "c", "d"]})

    assert described["status"] == "SUCCEEDED", described
    calls = described["output"]
    assert [call["event"] for call in calls] == [{"seconds": 1, "item": item} for item in "abcd"]
    assert {call["pid"] for call in calls} == stack.worker_pids()
    for call in calls:
        partners = [other for other in calls if other is not call and overlap(call, other)]
        assert any(other["pid"] != call["pid"] for other in partners), (call, calls)
        running_with_it = [other for other in calls if other["start"] <= call["start"] < other["end"]]
        assert len(running_with_it) <= 2, calls
