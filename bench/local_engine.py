"""In-process throughput of the ASL engine through the local runner (no Redis).

Prints executions/s and µs per state transition for two machines:
a Task -> Choice -> Task machine with local functions, and a chain of 10 Pass states.

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


def measure(
    name: str, definition: dict[str, Any], transitions: int, executions: int, rounds: int = 1
) -> None:
    """Run ``executions`` executions ``rounds`` times and print the fastest round.

    The fastest round is the one least disturbed by other work on the machine, which on a
    shared machine can double a single round's time.
    """
    runner = LocalRunner(StateMachine.parse(definition, name), {"Validate": validate, "Add": add})
    record = {"dragon_name_str": "Atlas", "family_str": "red"}
    runner.run(record)  # warm caches
    elapsed = min(_round(runner, record, executions) for _ in range(rounds))
    per_transition = elapsed / (executions * transitions) * 1e6
    print(
        f"{name:<22} {executions / elapsed:>10,.0f} executions/s "
        f"{per_transition:>8.2f} µs per transition ({transitions} transitions per execution)"
    )


def _round(runner: LocalRunner, record: dict[str, Any], executions: int) -> float:
    started = time.perf_counter()
    for _ in range(executions):
        result = runner.run(record, start=0.0)
        assert result.status == "SUCCEEDED", result
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--executions", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3, help="report the fastest of this many rounds")
    args = parser.parse_args()
    measure("Task->Choice->Task", TASK_CHOICE_TASK, 3, args.executions, args.rounds)
    measure("10 Pass states", PASS_CHAIN, 10, args.executions, args.rounds)
    # Memory is traced in a separate, short run: tracing slows every allocation down.
    tracemalloc.start()
    measure("(traced) Task->Choice->Task", TASK_CHOICE_TASK, 3, 200)
    _, peak = tracemalloc.get_traced_memory()
    print(f"memory: {peak / 1024:,.0f} KiB peak traced while running executions one after another")


if __name__ == "__main__":
    main()
