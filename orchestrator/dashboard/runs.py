"""What happened to each state of one execution, read from its AWS-shaped history.

Each history event names its thread's previous event (``previousEventId``), so every event
belongs to the state whose Entered event starts its chain. A state's latest visit decides its
status: ``succeeded`` when it exited cleanly, ``caught`` when it exited after an error that
was not retried away (a Catch took it on), ``failed`` when it never exited and the execution
ended (or it was aborted), ``running`` when it never exited and the execution runs on,
``not-run`` when it was never entered. A Parallel or Map state whose branch failed is
``caught`` if it still exited.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_CLEARING_SUFFIXES = ("Scheduled", "StateStarted", "FunctionSucceeded", "TaskSucceeded")
_NOT_STATE_FAILURES = {"ExecutionFailed", "ExecutionTimedOut", "MapIterationSucceeded"}


@dataclass
class StateRun:
    """One state's latest visit: its status, input, output, error and retries."""

    name: str
    status: str = "running"
    input: Any = None
    output: Any = None
    error: str | None = None
    cause: str | None = None
    retries: int = 0
    visits: int = 0
    entered: float | None = None
    exited: float | None = None
    # An error not yet retried away in this visit.
    pending: bool = False
    children: set[str] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "input": self.input,
            "output": self.output,
            "error": self.error,
            "cause": self.cause,
            "retries": self.retries,
            "visits": self.visits,
        }


@dataclass
class Course:
    """An execution's states by name and the edges it went along."""

    runs: dict[str, StateRun]
    taken: set[tuple[str, str]]

    def statuses(self) -> dict[str, str]:
        return {name: run.status for name, run in self.runs.items()}


def read_course(history: list[dict[str, Any]], execution_status: str) -> Course:
    """Each state's latest visit and the edges taken, from ``history`` in order."""
    owner: dict[int, str] = {}  # event id -> the state it belongs to
    exits: set[int] = set()
    parent: dict[str, str] = {}
    runs: dict[str, StateRun] = {}
    taken: set[tuple[str, str]] = set()
    for event in history:
        kind, event_id = str(event.get("type", "")), event.get("id")
        previous = owner.get(event.get("previousEventId"))  # type: ignore[arg-type]
        if kind.endswith("StateEntered") and "name" in event:
            name = str(event["name"])
            run = runs.setdefault(name, StateRun(name))
            _enter(run, event)
            if previous is not None and event.get("previousEventId") in exits:
                taken.add((previous, name))
                if previous in parent:
                    parent[name] = parent[previous]
            elif previous is not None:
                parent[name] = previous
            if name in parent and parent[name] in runs:
                runs[parent[name]].children.add(name)
            owner[event_id] = name
            continue
        state = previous
        if state is None or state not in runs:
            continue
        owner[event_id] = state
        _apply(runs[state], kind, event, runs)
        if kind.endswith("StateExited"):
            exits.add(event_id)
    for run in runs.values():
        if run.status == "running" and execution_status != "RUNNING":
            run.status = "failed"
    return Course(runs, taken)


def _enter(run: StateRun, event: dict[str, Any]) -> None:
    run.status, run.input, run.output = "running", event.get("input"), None
    run.error = run.cause = None
    run.retries, run.pending, run.children = 0, False, set()
    run.visits += 1
    run.entered, run.exited = event.get("timestamp"), None


def _apply(run: StateRun, kind: str, event: dict[str, Any], runs: dict[str, StateRun]) -> None:
    if kind.endswith("Scheduled") and run.pending:
        run.retries += 1
    if kind.endswith(_CLEARING_SUFFIXES):
        run.pending = False
    elif (kind.endswith(("Failed", "TimedOut")) and kind not in _NOT_STATE_FAILURES) or kind.endswith(
        "Aborted"
    ):
        run.pending = True
        run.error = event.get("error", run.error)
        run.cause = event.get("cause", run.cause)
    if kind.endswith("Aborted"):
        run.status = "failed"
        _fail_open_children(run, runs)
    elif kind in ("ParallelStateFailed", "MapStateFailed"):
        _fail_open_children(run, runs)
    elif kind.endswith("StateExited"):
        _fail_open_children(run, runs)
        failed = [runs[child] for child in run.children if child in runs and runs[child].status == "failed"]
        run.status = "caught" if run.pending or failed else "succeeded"
        if failed and run.error is None:  # the branch's error is what the Catch took on
            run.error, run.cause = failed[0].error, failed[0].cause
        run.output, run.exited = event.get("output"), event.get("timestamp")


def _fail_open_children(run: StateRun, runs: dict[str, StateRun]) -> None:
    """A fork that ends takes with it what still ran inside (a Fail state, an aborted sibling)."""
    for child in run.children:
        if child in runs and runs[child].status == "running":
            runs[child].status = "failed"
            _fail_open_children(runs[child], runs)
