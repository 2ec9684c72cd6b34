"""Nested executions on the stack: an orchestrator starts the child a StartExecution event asks for.

A ``states:startExecution`` task's transition adds a StartExecution event for its child
(runtime.transitions), keyed by the child's name, so the orchestrators take it as they take any
event of that execution: its start, the event's ack and the report to the parent's task commit
together, exactly once. The report is StartExecution's answer: the child's ARN and start date
(submitted, for a task that waits for the child's end), or its error. A child started by a
``.sync`` task names that task (``parentTask``); the commit that ends the child reports its end
to it (runtime.transitions.record).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from orchestrator import nested_executions
from orchestrator.asl.definition import StateMachine
from orchestrator.protocol.keys import EVENT_FIELD
from orchestrator.runtime import transitions
from orchestrator.runtime.store import Commit
from orchestrator.services import Targets
from orchestrator.settings import Settings


def take_starts(
    commit: Commit,
    name: str,
    starts: list[dict[str, Any]],
    execution: dict[str, Any] | None,
    machine_of: Callable[[str], StateMachine | None],
    settings: Settings,
    now: float,
    targets: Targets | None = None,
) -> transitions.Transition | None:
    """Start the execution ``name`` that ``starts`` ask for, once, and answer each asking task.

    Only the first start of a name starts it. StartExecution is idempotent for a start that
    finds it running with the same machine and input (and no task waiting for its end); any
    other finds it already exists, as on AWS. Returns the child's start, or None.
    """
    started = None
    for event in starts:
        machine_name, sync = str(event.get("machine")), int(event.get("sync") or 0)
        sdk = event.get("sdk") is True
        child = None
        if execution is None:
            machine = machine_of(machine_name)
            if machine is None:
                report = nested_executions.machine_missing(machine_name, sdk)
            else:
                child = started = transitions.start(machine, name, event.get("input"), now, targets=targets)
                execution = started.execution
                if sync:
                    parent = {"execution": event.get("parent"), "token": event.get("token"), "sync": sync}
                    execution[nested_executions.PARENT_TASK] = parent
                report = nested_executions.started(execution, sync, sdk)
        elif is_same_start(execution, machine_name, event.get("input"), sync):
            report = nested_executions.started(execution, 0, sdk)
        else:
            report = nested_executions.already_exists(machine_name, name, sdk)
        answer = {**report, "execution": event.get("parent"), "token": event.get("token")}
        commit.add_stream_entry(commit.keys.events, {EVENT_FIELD: json.dumps(answer)})
        if child is not None:
            # After the answer: a child that ends at once reports its end behind its start.
            commit.expect_version(name, 0)
            transitions.record(commit, child, 0, settings)
    return started


def is_same_start(execution: dict[str, Any], machine: str, input: Any, sync: int) -> bool:
    """Whether a start of ``machine`` with ``input`` repeats the one that made the running ``execution``."""
    return (
        not sync
        and execution.get("status") == "RUNNING"
        and execution.get("stateMachine") == machine
        and execution.get("input") == input
        and nested_executions.PARENT_TASK not in execution
    )
