"""Nested executions with an orchestrator killed at each point of a transition: each runs once.

Each record starts a NestedPipeline execution whose one task runs the dragon pipeline (with a
Wait first) as a ``.sync:2`` child. Given an orchestrator that SIGKILLs itself at a crash point
(``REDSTEP_FAULT_POINT``, as in test_fault_crash_points), when another takes over, then every
parent and every child ends SUCCEEDED exactly once, each parent with its own child's output,
each dragon stored and announced once, and nothing is left pending, moved aside or stuck.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import Keys
from orchestrator.settings import Settings
from tests.chaos import FAST_RECOVERY, running_workers
from tests.test_fault_crash_points import (
    POINTS,
    RECORDS,
    assert_each_execution_ended_exactly_once,
    killed_at_then_taken_over,
    produce,
    waiting_pipeline,
)

NESTED_PIPELINE = {
    "StartAt": "RunPipeline",
    "States": {
        "RunPipeline": {
            "Type": "Task",
            "Resource": "arn:aws:states:::states:startExecution.sync:2",
            "Parameters": {
                "StateMachineArn": "arn:aws:states:us-east-1:000000000000:stateMachine:WaitingPipeline",
                "Name.$": "States.Format('{}-child', $$.Execution.Name)",
                "Input.$": "$",
            },
            "End": True,
        }
    },
}


@pytest.fixture
def crash_env(subprocess_env: dict[str, str]) -> dict[str, str]:
    return {**subprocess_env, **FAST_RECOVERY, "REDSTEP_STATE_MACHINE": "NestedPipeline"}


@pytest.fixture
def workers(crash_env: dict[str, str]) -> Iterator[None]:
    with running_workers(crash_env):
        yield


@pytest.mark.parametrize("point", POINTS)
def test_an_orchestrator_killed_at_a_crash_point_runs_each_nested_execution_once(
    point: str, tmp_path: Path, crash_env: dict[str, str], workers: None, redis_client: redis.Redis
) -> None:
    settings = Settings(redis_url=crash_env["REDIS_URL"], prefix=crash_env["REDSTEP_PREFIX"])
    keys, client = Keys(settings.prefix), Client(redis_client, settings)
    client.register_machine("WaitingPipeline", waiting_pipeline())
    client.register_machine("NestedPipeline", NESTED_PIPELINE)
    produce(crash_env, tmp_path)

    killed_at_then_taken_over(crash_env, point, redis_client, keys, 2 * RECORDS)

    assert_each_execution_ended_exactly_once(redis_client, settings, RECORDS, executions_per_record=2)
    parents = [e for e in client.list_executions(limit=1000) if e["stateMachine"] == "NestedPipeline"]
    assert len(parents) == RECORDS
    for summary in parents:
        described = client.describe(summary["name"])
        child = client.describe(f"{summary['name']}-child")
        assert described["output"]["Name"] == child["name"]
        assert described["output"]["Output"] == child["output"]
