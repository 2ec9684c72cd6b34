"""In-process throughput of the ASL engine through the local runner (no Redis).

Prints executions/s and µs per state transition for two machines: a Task -> Choice -> Task
machine with local functions, and a chain of 10 Pass states. The history is recorded either
way; the "history read" lines also build it in AWS's shape after every execution, as
``redstep run --json`` does.

    python bench/local_engine.py [--executions N] [--rounds R]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from typing import Any

from orchestrator.asl.definition import StateMachine
from orchestrator.local import LocalRunner

TASK_CHOICE_TASK = {
    "StartAt": "Validate",
    "States": {
        "Validate": {"Type": "Task", "Resource": "Validate", "ResultPath": "$.validation", "Next": "Exists?"},
        "Exists?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.validation.exists", "BooleanEquals": True, "Next": "Skip"}],
            "Default": "Add",
        },
        "Add": {"Type": "Task", "Resource": "Add", "ResultPath": None, "End": True},
        "Skip": {"Type": "Succeed"},
    },
}

PASS_CHAIN = {
    "StartAt": "P0",
    "States": {
        f"P{i}": {"Type": "Pass", **({"Next": f"P{i + 1}"} if i < 9 else {"End": True})} for i in range(10)
    },
}


def validate(event: Any, context: Any) -> dict[str, bool]:
    return {"exists": False}


def add(event: Any, context: Any) -> None:
    return None


class Case:
    """One machine to measure, with the fastest round seen so far."""

    def __init__(self, name: str, definition: dict[str, Any], transitions: int, read_history: bool) -> None:
        self.name = name
        self.transitions = transitions
        self.read_history = read_history
        self.runner = LocalRunner(StateMachine.parse(definition, name), {"Validate": validate, "Add": add})
        self.best = float("inf")
        self.runner.run(RECORD)  # warm caches

    def round(self, executions: int) -> None:
        runner, read_history = self.runner, self.read_history
        started = time.perf_counter()
        for _ in range(executions):
            result = runner.run(RECORD, start=0.0)
            if read_history:
                result.history  # noqa: B018 - reading it builds it
        elapsed = time.perf_counter() - started
        assert result.status == "SUCCEEDED", result
        self.best = min(self.best, elapsed / executions)

    def report(self) -> str:
        per_transition = self.best / self.transitions * 1e6
        return (
            f"{self.name:<38} {1 / self.best:>10,.0f} executions/s "
            f"{per_transition:>8.2f} µs per transition ({self.transitions} transitions per execution)"
        )


RECORD = {"dragon_name_str": "Atlas", "family_str": "red"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--executions", type=int, default=2_000, help="executions per round")
    parser.add_argument("--rounds", type=int, default=25, help="report the fastest of this many rounds")
    args = parser.parse_args()
    cases = [
        Case("Task->Choice->Task", TASK_CHOICE_TASK, 3, read_history=False),
        Case("10 Pass states", PASS_CHAIN, 10, read_history=False),
        Case("Task->Choice->Task, history read", TASK_CHOICE_TASK, 3, read_history=True),
        Case("10 Pass states, history read", PASS_CHAIN, 10, read_history=True),
    ]
    # Rounds of every case take turns, so a spell of other work on the machine slows a round
    # of each rather than every round of one; the fastest round is the least disturbed.
    for _ in range(args.rounds):
        for case in cases:
            case.round(args.executions)
    for case in cases:
        print(case.report())
    # Memory is traced in a separate, short run: tracing slows every allocation down.
    traced = Case("(traced)", TASK_CHOICE_TASK, 3, read_history=False)
    tracemalloc.start()
    traced.round(200)
    _, peak = tracemalloc.get_traced_memory()
    print(f"memory: {peak / 1024:,.0f} KiB peak traced while running executions one after another")


if __name__ == "__main__":
    main()
