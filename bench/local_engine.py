"""In-process throughput of the ASL engine through the local runner (no Redis).

Prints executions/s and µs per state transition for two machines:
a Task -> Choice -> Task machine with local functions, and a chain of 10 Pass states.

    python bench/local_engine.py [--executions N]
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


def measure(name: str, definition: dict[str, Any], transitions: int, executions: int) -> None:
    runner = LocalRunner(StateMachine.parse(definition, name), {"Validate": validate, "Add": add})
    record = {"dragon_name_str": "Atlas", "family_str": "red"}
    runner.run(record)  # warm caches
    started = time.perf_counter()
    for _ in range(executions):
        result = runner.run(record, start=0.0)
        assert result.status == "SUCCEEDED", result
    elapsed = time.perf_counter() - started
    per_transition = elapsed / (executions * transitions) * 1e6
    print(
        f"{name:<22} {executions / elapsed:>10,.0f} executions/s "
        f"{per_transition:>8.2f} µs per transition ({transitions} transitions per execution)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--executions", type=int, default=20_000)
    args = parser.parse_args()
    measure("Task->Choice->Task", TASK_CHOICE_TASK, 3, args.executions)
    measure("10 Pass states", PASS_CHAIN, 10, args.executions)
    # Memory is traced in a separate, short run: tracing slows every allocation down.
    tracemalloc.start()
    measure("(traced) Task->Choice->Task", TASK_CHOICE_TASK, 3, 200)
    _, peak = tracemalloc.get_traced_memory()
    print(f"memory: {peak / 1024:,.0f} KiB peak traced while running executions one after another")


if __name__ == "__main__":
    main()
