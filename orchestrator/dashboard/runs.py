"""What happened to each state of one execution, read from its AWS-shaped history.

Each history event names its thread's previous event (``previousEventId``), so every event
belongs to the visit of a state whose Entered event starts its chain. A visit ends
``succeeded`` when the state exited cleanly, ``caught`` when it exited after an error that was
not retried away (a Catch took it on; for a Parallel or Map, also when a branch failed),
``failed`` when it was aborted or the execution ended while it ran; a visit still open in a
running execution is ``running``. A state visited again after its last visit ended (a loop, a
redrive) shows its latest visit; visits that overlap (a Map's iterations) show together, the
worst first: failed, running, caught, succeeded. A state never entered is ``not-run``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

_CLEARING_SUFFIXES = ("Scheduled", "StateStarted", "FunctionSucceeded", "TaskSucceeded")
_NOT_STATE_FAILURES = {"ExecutionFailed", "ExecutionTimedOut", "MapIterationSucceeded"}
_EXECUTION_ENDS = {"ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"}


@dataclass(slots=True)  # a long execution's page keeps thousands of them
class StateRun:
    """One state's latest visit (or overlapping visits): status, input, output, error, retries."""

    name: str
    input: Any = None
    output: Any = None
    error: str | None = None
    cause: str | None = None
    retries: int = 0
    visits: int = 0
    open: int = 0
    outcomes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if "failed" in self.outcomes:
            return "failed"
        if self.open:
            return "running"
        return "caught" if "caught" in self.outcomes else "succeeded"

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


@dataclass(slots=True)
class Visit:
    """One entering of a state, until it exits, is aborted, or the execution ends."""

    run: StateRun
    parent: Visit | None
    pending: bool = False  # an error not yet retried away
    retries: int = 0
    outcome: str | None = None
    children: list[Visit] = field(default_factory=list)

    def close(self, outcome: str) -> None:
        if self.outcome is None:
            self.outcome = outcome
            self.run.open -= 1
            self.run.outcomes.append(outcome)

    def fail_open_children(self) -> None:
        """A fork that ends takes with it what still ran inside (a Fail state, an aborted sibling)."""
        for child in self.children:
            if child.outcome is None:
                child.close("failed")
                child.fail_open_children()


@dataclass
class Course:
    """An execution's states by name and the (source, target) edges it went along."""

    runs: dict[str, StateRun]
    taken: set[tuple[str, str]]

    def statuses(self) -> dict[str, str]:
        return {name: run.status for name, run in self.runs.items()}


def read_course(history: Iterable[dict[str, Any]], execution_status: str) -> Course:
    """Each state's latest visit and the edges taken, from ``history`` in order."""
    reader = CourseReader()
    reader.feed(history)
    return reader.course(execution_status)


class CourseReader:
    """``read_course`` in steps: events fed in order, a course asked for after any of them.

    What it keeps is what the next events need (the visit each event id belongs to, the
    exits, the visits that may still be open), so a running execution's page can go on
    from the events it read last time instead of reading its history again.
    """

    def __init__(self) -> None:
        self.owner: dict[Any, Visit] = {}  # event id -> the visit it belongs to
        self.exits: set[Any] = set()
        self.runs: dict[str, StateRun] = {}
        self.open_visits: list[Visit] = []
        self.taken: set[tuple[str, str]] = set()

    def feed(self, history: Iterable[dict[str, Any]]) -> None:
        for event in history:
            self._read(event)
        # A closed visit never changes again; keeping only open ones bounds what a long
        # execution's reader holds.
        self.open_visits = [visit for visit in self.open_visits if visit.outcome is None]

    def _read(self, event: dict[str, Any]) -> None:
        kind, previous = str(event.get("type", "")), self.owner.get(event.get("previousEventId"))
        if kind in _EXECUTION_ENDS:
            for visit in self.open_visits:
                visit.close("failed")
        elif kind.endswith("StateEntered") and "name" in event:
            after_exit = event.get("previousEventId") in self.exits
            visit = _enter(self.runs, event, previous, after_exit, self.taken)
            self.open_visits.append(visit)
            self.owner[event.get("id")] = visit
        elif previous is not None:
            self.owner[event.get("id")] = previous
            _apply(previous, kind, event)
            if kind.endswith("StateExited"):
                self.exits.add(event.get("id"))

    def course(self, execution_status: str) -> Course:
        """The course so far. For an execution no longer running it closes every open visit as
        failed, so no event may be fed after that."""
        if execution_status != "RUNNING":
            for visit in self.open_visits:
                visit.close("failed")
        return Course(self.runs, self.taken)


def _enter(
    runs: dict[str, StateRun],
    event: dict[str, Any],
    previous: Visit | None,
    after_exit: bool,
    taken: set[tuple[str, str]],
) -> Visit:
    name = str(event["name"])
    run = runs.setdefault(name, StateRun(name))
    if run.open == 0:  # not overlapping an earlier visit: this one replaces what it showed
        run.outcomes, run.output, run.error, run.cause, run.retries = [], None, None, None, 0
    run.open += 1
    run.visits += 1
    run.input = event.get("input")
    if previous is not None and after_exit:
        taken.add((previous.run.name, name))
    parent = (previous.parent if after_exit else previous) if previous is not None else None
    visit = Visit(run, parent)
    if parent is not None:
        parent.children.append(visit)
    return visit


def _apply(visit: Visit, kind: str, event: dict[str, Any]) -> None:
    run = visit.run
    if kind.endswith("Scheduled") and visit.pending:
        visit.retries += 1
        run.retries = max(run.retries, visit.retries)
    if kind.endswith(_CLEARING_SUFFIXES):
        visit.pending = False
    elif (kind.endswith(("Failed", "TimedOut")) and kind not in _NOT_STATE_FAILURES) or kind.endswith(
        "Aborted"
    ):
        visit.pending = True
        run.error = event.get("error", run.error)
        run.cause = event.get("cause", run.cause)
    if kind.endswith("Aborted"):
        visit.close("failed")
        visit.fail_open_children()
    elif kind in ("ParallelStateFailed", "MapStateFailed"):
        visit.fail_open_children()
    elif kind.endswith("StateExited"):
        visit.fail_open_children()
        failed = [child for child in visit.children if child.outcome == "failed"]
        if failed and run.error is None:  # the branch's error is what the Catch took on
            run.error, run.cause = failed[0].run.error, failed[0].run.cause
        visit.close("caught" if visit.pending or failed else "succeeded")
        run.output = event.get("output")
