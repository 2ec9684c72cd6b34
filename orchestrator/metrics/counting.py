"""What one committed transition adds to the counters, computed from the transition alone.

Called for every transition an orchestrator commits (runtime.transitions.record); the counts
go into the commit's own script call as one HINCRBY batch, so they land exactly when the
transition does, once.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from orchestrator.protocol.metrics import counting_enabled, field, observe

if TYPE_CHECKING:
    from orchestrator.runtime.transitions import Transition

FINISHED = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
ENABLED = counting_enabled()


def count_transition(counts: Counter[str], transition: Transition) -> None:
    """Add what ``transition`` did to ``counts``: a start, an end and its duration, states entered,
    retried tasks, and the change in running executions."""
    if not ENABLED:
        return
    execution = transition.execution
    machine = execution["stateMachine"]
    previous, status = transition.previous_status, execution["status"]
    if previous is None:
        counts[field("executions_started", machine)] += 1
    if status != previous:
        if status == "RUNNING":
            counts[field("executions_running", machine)] += 1
        elif previous == "RUNNING":
            counts[field("executions_running", machine)] -= 1
        if status in FINISHED:
            counts[field("executions_finished", machine, status)] += 1
            stopped = execution.get("stopDate") or execution["startDate"]
            observe(counts, "execution_duration", (machine,), stopped - execution["startDate"])
    entered = sum(1 for event in transition.history if event["type"].endswith("StateEntered"))
    if entered:
        counts[field("state_transitions", machine)] += entered
    for task in transition.tasks:
        if task["attempt"] > 1:  # attempts count from 1
            counts[field("task_retries", task["function"])] += 1
