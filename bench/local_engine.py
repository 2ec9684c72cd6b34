"""In-process throughput of the ASL engine through the local runner (no Redis).

Prints executions/s and µs per state transition for two machines: a Task -> Choice -> Task
machine with local functions, and a chain of 10 Pass states. The history is recorded either
way; the "history read" lines also build it in AWS's shape after every execution, as
``redstep run --json`` does.

With ``--node`` the same two machines also run on aws-local-stepfunctions (Node.js, in-process;
npm installs it into a cache directory the first time), in turns with redstep's rounds, and the
ratios are printed: figures from different runs are never compared.

    python bench/local_engine.py [--executions N] [--rounds R] [--node]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
import tracemalloc
from pathlib import Path
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
            f"{self.name:<50} {1 / self.best:>10,.0f} executions/s "
            f"{per_transition:>8.2f} µs per transition ({self.transitions} transitions per execution)"
        )


RECORD = {"dragon_name_str": "Atlas", "family_str": "red"}

NODE_PACKAGE = "aws-local-stepfunctions@3"
NODE_SCRIPT = Path(__file__).with_name("local_engine_node.mjs")
# Turns of redstep's rounds and Node's, alternating, so that both see the same spells of noise.
NODE_TURNS = 5


def node_modules() -> Path:
    """Where aws-local-stepfunctions is installed, installing it with npm the first time."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise SystemExit("--node needs node and npm on PATH (Debian: apt install nodejs npm)")
    home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "redstep-bench" / "node"
    if not (home / "node_modules" / "aws-local-stepfunctions").is_dir():
        home.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--prefix", str(home), "--no-save", NODE_PACKAGE], check=True)
    return home / "node_modules"


def node_round(modules: Path, executions: int, rounds: int) -> dict[str, float]:
    """Seconds per execution of Node's fastest round, per machine."""
    done = subprocess.run(
        ["node", str(NODE_SCRIPT), str(executions), str(rounds)],
        env={**os.environ, "NODE_PATH": str(modules)},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--executions", type=int, default=2_000, help="executions per round")
    parser.add_argument("--rounds", type=int, default=25, help="report the fastest of this many rounds")
    parser.add_argument("--node", action="store_true", help="also run aws-local-stepfunctions, in turns")
    args = parser.parse_args()
    cases = [
        Case("Task->Choice->Task", TASK_CHOICE_TASK, 3, read_history=False),
        Case("10 Pass states", PASS_CHAIN, 10, read_history=False),
        Case("Task->Choice->Task, history read", TASK_CHOICE_TASK, 3, read_history=True),
        Case("10 Pass states, history read", PASS_CHAIN, 10, read_history=True),
    ]
    modules = node_modules() if args.node else None
    node = {"taskChoiceTask": float("inf"), "passChain": float("inf")}
    turns = NODE_TURNS if modules else 1
    # Rounds of every case take turns, so a spell of other work on the machine slows a round
    # of each rather than every round of one; the fastest round is the least disturbed.
    for turn in range(turns):
        for _ in range(args.rounds // turns + (turn < args.rounds % turns)):
            for case in cases:
                case.round(args.executions)
        if modules:
            for machine, seconds in node_round(modules, args.executions, args.rounds // turns or 1).items():
                node[machine] = min(node[machine], seconds)
    for case in cases:
        print(case.report())
    if modules:
        for name, machine, ours, transitions in (
            ("Task->Choice->Task", "taskChoiceTask", cases[0], 3),
            ("10 Pass states", "passChain", cases[1], 10),
        ):
            seconds = node[machine]
            print(
                f"{'aws-local-stepfunctions, ' + name:<50} {1 / seconds:>10,.0f} executions/s "
                f"{seconds / transitions * 1e6:>8.2f} µs per transition; redstep {seconds / ours.best:.2f}x"
            )
    # Memory is traced in a separate, short run: tracing slows every allocation down.
    traced = Case("(traced)", TASK_CHOICE_TASK, 3, read_history=False)
    tracemalloc.start()
    traced.round(200)
    _, peak = tracemalloc.get_traced_memory()
    print(f"memory: {peak / 1024:,.0f} KiB peak traced while running executions one after another")


if __name__ == "__main__":
    main()
