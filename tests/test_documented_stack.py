"""AWS's run-time limits and error names hold on a real stack as in the local runner.

An orchestrator and a worker process on a real Redis run what test_documented_limits.py and
test_documented_errors.py run in-process: an inline Map over 100 function tasks keeps at most
40 iterations running ("Map workflow state", Developer Guide: Inline mode "supports up to 40
concurrent iterations"), and a Choice with no match and no Default fails with
States.NoChoiceMatched (the ASL specification's error table).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.asl.definition import StateMachine
from orchestrator.local import LocalRunner
from orchestrator.runtime.server import RedisServer
from tests.conformance.stack import Stack, running_stack, stack_settings

pytestmark = pytest.mark.stack

THIS_FILE = Path(__file__).resolve()
WAIT_SECONDS = 120.0


def doubles(event: Any, context: Any) -> Any:
    return event * 2


MAP_OF_TASKS = {
    "StartAt": "M",
    "States": {
        "M": {
            "Type": "Map",
            "ItemProcessor": {
                "StartAt": "T",
                "States": {"T": {"Type": "Task", "Resource": "doubles", "End": True}},
            },
            "End": True,
        }
    },
}
NO_MATCH = {
    "StartAt": "C",
    "States": {
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericEquals": 1, "Next": "One"}]},
        "One": {"Type": "Pass", "End": True},
    },
}


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An orchestrator and two worker processes that loaded this file's functions."""
    settings, env = stack_settings(redis_server.url, "documented")
    with running_stack(settings, env, [THIS_FILE], tmp_path_factory.mktemp("workers"), workers=2) as running:
        yield running


def run_on_the_stack(
    stack: Stack, definition: dict[str, Any], input: Any
) -> tuple[dict[str, Any], list[Any]]:
    machine = f"documented-{uuid.uuid4().hex[:6]}"
    stack.client.register_machine(machine, definition)
    name = stack.client.start_execution(machine, input)
    try:
        described = stack.client.wait(name, timeout=WAIT_SECONDS)
    except TimeoutError as exc:
        pytest.fail(f"{exc}\n{stack.logs_tail()}")
    return described, stack.client.history(name)


def test_an_inline_map_on_the_stack_runs_at_most_40_iterations_at_once(stack: Stack) -> None:
    described, history = run_on_the_stack(stack, MAP_OF_TASKS, list(range(100)))

    running = peak = 0
    for event in history:
        running += {"MapIterationStarted": 1, "MapIterationSucceeded": -1}.get(event["type"], 0)
        peak = max(peak, running)
    assert described["status"] == "SUCCEEDED", described
    assert described["output"] == [item * 2 for item in range(100)]
    assert peak == 40
    assert [event["type"] for event in history].count("MapIterationStarted") == 100


def test_a_choice_without_a_match_on_the_stack_fails_as_in_the_local_runner(stack: Stack) -> None:
    described, _ = run_on_the_stack(stack, NO_MATCH, {"n": 2})
    local = LocalRunner(StateMachine.parse(NO_MATCH, "NoMatch")).run({"n": 2})

    assert (described["status"], described["error"], described["cause"]) == (
        local.status,
        local.error,
        local.cause,
    )
    assert described["error"] == "States.NoChoiceMatched"
