"""What one committed transition adds to the counters, computed from the transition alone.

Called for every transition an orchestrator commits (runtime.transitions.record); the counts
go into the commit's own script call as one HINCRBY batch, so they land exactly when the
transition does, once. This runs on the hot path: each machine's field names are made once.

The running executions counted here stand in for the gauge only until the machines' indexes of
running executions are built (metrics.scrape): a process that does not count leaves this sum
short of the truth.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from typing import TYPE_CHECKING

from orchestrator.protocol.metrics import BUCKET_LABELS, bucket_index, counting_enabled, field

if TYPE_CHECKING:
    from orchestrator.runtime.transitions import Transition

FINISHED = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
ENABLED = counting_enabled()


class MachineFields:
    """The hash fields of one state machine's counters."""

    def __init__(self, machine: str) -> None:
        self.machine = machine
        self.started = field("executions_started", machine)
        self.running = field("executions_running", machine)
        self.transitions = field("state_transitions", machine)
        self.duration_sum = field("execution_duration_sum_us", machine)
        self.finished = {status: field("executions_finished", machine, status) for status in FINISHED}
        self.duration_buckets = [field("execution_duration_bucket", machine, le) for le in BUCKET_LABELS]


machine_fields = lru_cache(maxsize=1024)(MachineFields)


def count_transition(counts: Counter[str], transition: Transition) -> None:
    """Add what ``transition`` did to ``counts``: a start, an end and its duration, states entered,
    retried tasks, and the change in running executions."""
    if not ENABLED:
        return
    execution = transition.execution
    fields = machine_fields(execution["stateMachine"])
    previous, status = transition.previous_status, execution["status"]
    if previous is None:
        counts[fields.started] += 1
    if status != previous:
        if status == "RUNNING":
            counts[fields.running] += 1
        elif previous == "RUNNING":
            counts[fields.running] -= 1
        if status in FINISHED:
            counts[fields.finished[status]] += 1
            seconds = (execution.get("stopDate") or execution["startDate"]) - execution["startDate"]
            counts[fields.duration_buckets[bucket_index(seconds)]] += 1
            counts[fields.duration_sum] += max(0, round(seconds * 1_000_000))
    entered = len([event for event in transition.history if event["type"].endswith("StateEntered")])
    if entered:
        counts[fields.transitions] += entered
    for task in transition.tasks:
        if task["attempt"] > 1:  # attempts count from 1
            counts[field("task_retries", task["function"])] += 1
