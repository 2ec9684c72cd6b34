"""A Map's or Parallel's gathered results are held to the payload limit while its children run.

"Quotas for Standard Workflows" (Developer Guide,
https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html): 262,144 bytes is the
most "a task, state, or execution" may output, and the children's results together are the
fork's result. The fork fails with States.DataLimitExceeded when it joins them; until then each
finished child's result waits in the execution's record, which every commit writes whole. These
tests drive the core one report at a time, as an orchestrator does, and read that record after
every step: it stays small however much the children return, and the fork still ends exactly
as it did when every result was kept. A record whose results were dropped says schema 3, which
a redstep reading only up to schema 2 (one that would join the dropped results as nulls) refuses.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from orchestrator.asl.definition import StateMachine
from orchestrator.asl.engine import advance, start_execution
from orchestrator.asl.execution import LEAN_FORK_SCHEMA, SCHEMA_VERSION, upgrade_execution
from orchestrator.asl.json_values import PAYLOAD_LIMIT_BYTES

TASK = {"Type": "Task", "Resource": "f", "End": True}
MAP = {
    "StartAt": "S",
    "States": {
        "S": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemProcessor": {"StartAt": "T", "States": {"T": TASK}},
            "End": True,
        }
    },
}


def parallel(branches: int) -> dict[str, Any]:
    branch = {"StartAt": "T", "States": {"T": TASK}}
    return {
        "StartAt": "S",
        "States": {"S": {"Type": "Parallel", "Branches": [branch] * branches, "End": True}},
    }


class Driven:
    """An execution advanced one task report at a time; every step's record size noted."""

    def __init__(self, definition: dict[str, Any], input: Any) -> None:
        self.machine = StateMachine.parse(definition, "M")
        step = start_execution(self.machine, "e", input, 0.0)
        self.execution = step.execution
        self.history = list(step.history)
        self.waiting = [a for a in step.actions if a["type"] == "RunTask"]
        self.record_sizes = [len(json.dumps(self.execution))]
        self.now = 0.0

    def answer(self, task: dict[str, Any], output: Any) -> None:
        self.waiting.remove(task)
        self.now += 1
        event = {"type": "TaskSucceeded", "token": task["token"], "output": output}
        step = advance(self.machine, self.execution, event, self.now)
        self.history += step.history
        self.waiting += [a for a in step.actions if a["type"] == "RunTask"]
        self.record_sizes.append(len(json.dumps(self.execution)))

    def types(self) -> list[str]:
        return [event["type"] for event in self.history]


def test_a_map_whose_results_pass_the_limit_keeps_a_small_record_and_fails_at_its_end() -> None:
    """Two hundred iterations of 20 KB each: 4 MB of results that would all have waited in the
    record. Every iteration still runs, and the Map fails as it joins, with the same error."""
    driven = Driven(MAP, {"items": list(range(200))})
    while driven.waiting:
        driven.answer(driven.waiting[0], "x" * 20_000)

    assert driven.execution["status"] == "FAILED"
    assert driven.execution["error"] == "States.DataLimitExceeded"
    assert driven.execution["cause"] == (
        "The state/task 'S' returned a result with a size exceeding the maximum number of bytes "
        "service limit."
    )
    assert driven.types().count("MapIterationSucceeded") == 200
    assert driven.types()[-2:] == ["MapStateFailed", "ExecutionFailed"]
    # The limit's worth of results, and the Map's items and threads besides, at most.
    assert max(driven.record_sizes) < 2 * PAYLOAD_LIMIT_BYTES
    assert driven.execution["schema"] == LEAN_FORK_SCHEMA == 3
    assert upgrade_execution(json.loads(json.dumps(driven.execution)))["schema"] == 3


# Four results of 13 + sum(lengths) bytes together: "[", "]", three commas, two quotes each.
FITS_EXACTLY = [65_533, 65_533, 65_533, 65_532]


@pytest.mark.parametrize("fork", ["Map", "Parallel"])
@pytest.mark.parametrize("extra", [0, 1], ids=["exactly the limit", "one byte over"])
def test_results_of_exactly_the_limit_are_the_output_and_one_byte_more_fails(fork: str, extra: int) -> None:
    """Results measured one by one, arriving in any order, with slots still to come between
    them: exactly 262,144 bytes together is the fork's output, one byte more fails it."""
    lengths = [*FITS_EXACTLY[:-1], FITS_EXACTLY[-1] + extra]
    assert 13 + sum(lengths) == PAYLOAD_LIMIT_BYTES + extra
    definition = MAP if fork == "Map" else parallel(4)
    driven = Driven(definition, {"items": [0, 1, 2, 3]})
    slot_of = {id(task): index for index, task in enumerate(driven.waiting)}
    order = list(driven.waiting)
    random.Random(7).shuffle(order)
    for task in order:
        driven.answer(task, "y" * lengths[slot_of[id(task)]])

    if extra:
        assert driven.execution["status"] == "FAILED"
        assert driven.execution["error"] == "States.DataLimitExceeded"
    else:
        assert driven.execution["status"] == "SUCCEEDED"
        assert driven.execution["output"] == ["y" * length for length in lengths]


def test_small_results_are_kept_as_they_come_and_are_the_output() -> None:
    """Results far below the limit, null among them, are the Map's output in item order."""
    driven = Driven(MAP, {"items": list(range(60))})
    while driven.waiting:
        task = driven.waiting[-1]
        index = task["payload"]  # the item, which is its index here
        driven.answer(task, None if index == 3 else {"item": index})

    assert driven.execution["status"] == "SUCCEEDED"
    assert driven.execution["output"] == [None if i == 3 else {"item": i} for i in range(60)]
    assert driven.execution["schema"] == SCHEMA_VERSION == 2  # nothing dropped: any reader reads it
