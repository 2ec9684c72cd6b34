"""One execution's transition, carried out as far as the orchestrator can on its own.

The ASL core decides; this module settles what the orchestrator does itself (``sns:publish``
and ``sqs:sendMessage`` tasks complete inside the same transition, so their effect and the
state change commit together) and writes the outcome into a :class:`Commit`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from orchestrator import nested_executions, services
from orchestrator.asl import engine
from orchestrator.asl.definition import StateMachine
from orchestrator.asl.resources import START_EXECUTION
from orchestrator.metrics.counting import count_transition
from orchestrator.protocol.keys import EVENT_FIELD
from orchestrator.protocol.tasks import Task
from orchestrator.runtime.callbacks import (
    CALLBACK_KIND,
    DISPATCH_KIND,
    seal,
    seal_handed_tokens,
    token_key,
)
from orchestrator.runtime.keys import ACTIVITY_TASK_FIELD, FINISHED_STATUSES
from orchestrator.runtime.queues import OutgoingMessage
from orchestrator.runtime.store import Commit
from orchestrator.services import Targets
from orchestrator.settings import Settings

NOTIFY_END = "notifyEnd"
"""The execution's field that asks for its end to be announced (runtime.sync_executions)."""
ENDED_KEEP_SECONDS = 300
"""How long an end's announcement waits for its reader. A waiter still there reads it at once
and deletes it; one that hung up or gave up never will, so the announcement expires."""


@dataclass
class Transition:
    """What one execution did in one batch: its new blob, new history, and what it asked for."""

    execution: dict[str, Any]
    previous_status: str | None  # None: the execution starts in this transition
    history: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    timers: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    cancelled_timers: list[dict[str, Any]] = field(default_factory=list)
    publishes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # queue, body, message id, message attributes
    messages: list[tuple[str, Any, str, dict[str, Any]]] = field(default_factory=list)
    activity_tasks: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # The plain tokens this transition hands out (callbacks' $$.Task.Token, activity tasks);
    # record() seals them wherever they leave redstep.
    handed_tokens: set[str] = field(default_factory=set)
    # The nested executions its states:startExecution tasks start, each with the task's token.
    child_starts: list[tuple[nested_executions.ChildStart, str]] = field(default_factory=list)
    # Which queues and topics exist, for its service tasks (services.carry_out); None: not checked.
    targets: Targets | None = field(default=None, repr=False, compare=False)


def start(
    machine: StateMachine,
    name: str,
    input: Any,
    now: float,
    *,
    notify_end: bool = False,
    targets: Targets | None = None,
) -> Transition:
    """Start an execution of ``machine`` and carry it as far as it goes without a worker.

    ``targets`` answers for the queues and topics its service tasks name (runtime.targets).

    With ``notify_end`` (StartSyncExecution waits on it), the commit that ends it also adds
    its status to ``{p}:ended:{<name>}``.
    """
    step = engine.start_execution(machine, name, input, now)
    if notify_end:
        step.execution[NOTIFY_END] = True
    if machine.version is not None:
        # It runs on this version to its end, whatever is registered under its name later.
        step.execution["machineVersion"] = machine.version
    transition = Transition(step.execution, None, targets=targets)
    settle(machine, transition, step, now)
    return transition


def apply(
    machine: StateMachine,
    execution: dict[str, Any],
    events: list[dict[str, Any]],
    now: float,
    targets: Targets | None = None,
) -> Transition:
    """Feed ``events`` to a running execution, in order, settling each step."""
    transition = Transition(execution, execution["status"], targets=targets)
    for event in events:
        if event.get("type") in ("TaskSucceeded", "TaskFailed"):
            # Its outcome came (its child's end, or its start's refusal): no child to stop. A
            # refused start names a child that does not exist, or one that is someone else's.
            _forget_child(transition.execution, event.get("token"))
        step = engine.advance(machine, transition.execution, event, now)
        settle(machine, transition, step, now)
    return transition


def _forget_child(execution: dict[str, Any], token: Any) -> str | None:
    """The child the .sync task waiting on ``token`` started, no longer remembered; None if none."""
    children = execution.get(nested_executions.SYNC_CHILDREN)
    if not children or token not in children:
        return None
    child = children.pop(token)
    if not children:
        del execution[nested_executions.SYNC_CHILDREN]
    return str(child)


def settle(machine: StateMachine, transition: Transition, step: engine.Step, now: float) -> None:
    """Take a step's history and actions; carry out service tasks and feed their results back."""
    steps = [step]
    while steps:
        step = steps.pop(0)
        transition.execution = step.execution
        transition.history.extend(step.history)
        name = step.execution["name"]
        for action in step.actions:
            kind = action["type"]
            transition.handed_tokens.update(_handed_tokens(step.execution, action))
            if kind == "RunTask":
                transition.tasks.append(task_of(name, action))
            elif kind == "SetTimer":
                transition.timers.append((float(action["due"]), timer_event(name, action["token"])))
            elif kind == "CancelTimer":
                transition.cancelled_timers.append(timer_event(name, action["token"]))
            elif kind == "RunActivity":
                # An activity is a callback task: its worker answers the thread's callback token.
                for token in _handed_tokens(step.execution, action):
                    task = {"execution": name, "token": token, "input": action["input"]}
                    transition.activity_tasks.append((action["activity"], task))
            elif kind == "RunService" and action["service"] == START_EXECUTION:
                request = nested_executions.start_request(
                    action.get("parameters"), int(action.get("sync", 0)), bool(action.get("sdk"))
                )
                if isinstance(request, nested_executions.ChildStart):
                    # Started by an orchestrator as it takes the request (runtime.nested), which
                    # reports back to this task.
                    transition.child_starts.append((request, action["token"]))
                    if request.sync:
                        children = transition.execution.setdefault(nested_executions.SYNC_CHILDREN, {})
                        children[action["token"]] = request.name
                else:
                    refusal = {**request, "token": action["token"]}
                    steps.append(engine.advance(machine, transition.execution, refusal, now))
            elif kind == "RunService":
                event = run_service(transition, action, now)
                steps.append(engine.advance(machine, transition.execution, event, now))


def _handed_tokens(execution: dict[str, Any], action: dict[str, Any]) -> list[str]:
    """The callback token a dispatch (a function, a message, a publish, an activity task) hands out."""
    tokens = execution.get("tokens", {})
    owner = tokens.get(action.get("token"))
    if owner is None or owner[1] != DISPATCH_KIND:
        return []
    return [token for token, (thread, kind) in tokens.items() if thread == owner[0] and kind == CALLBACK_KIND]


def timer_event(execution: str, token: str) -> dict[str, Any]:
    """The event a timer fires, which is also how the timers set names it."""
    return {"type": "TimerFired", "execution": execution, "token": token}


def task_of(execution: str, action: dict[str, Any]) -> Task:
    task: Task = {
        "execution": execution,
        "token": action["token"],
        "function": action["function"],
        "function_arn": action["function_arn"],
        "payload": action["payload"],
        "attempt": int(action.get("attempt", 0)),
    }
    if action.get("heartbeat_seconds") is not None:
        task["heartbeat_seconds"] = float(action["heartbeat_seconds"])
    if action.get("timeout_seconds") is not None:
        task["timeout_seconds"] = float(action["timeout_seconds"])
    return task


def run_service(transition: Transition, action: dict[str, Any], now: float) -> dict[str, Any]:
    """Carry out one service task into ``transition``; the event that reports how it went."""
    report, effect = services.carry_out(action, now, transition.targets)
    if effect is not None and effect.kind == "publish":
        transition.publishes.append((effect.target, effect.payload))
    elif effect is not None:
        attributes = effect.attributes or {}
        transition.messages.append((effect.target, effect.payload, effect.message_id, attributes))
    return {**report, "token": action["token"]}


def fail(
    name: str, machine_name: str, input: Any, error: str, cause: str, now: float,
    execution: dict[str, Any] | None = None,
) -> Transition:  # fmt: skip
    """End an execution FAILED without the core: its machine is unknown, or the core raised.

    With ``execution`` None the execution starts and fails at once (its machine is unknown).
    """
    previous = execution["status"] if execution else None
    if execution is None:
        execution = engine.new_execution(machine_name, name, input, now)
    transition = Transition(execution, previous)
    if previous is None:
        transition.history.append(_event(execution, now, "ExecutionStarted", input=input))
    execution.update(status=engine.FAILED, error=error, cause=cause, stopDate=now, threads={}, tokens={})
    transition.history.append(_event(execution, now, "ExecutionFailed", error=error, cause=cause))
    return transition


def _event(execution: dict[str, Any], now: float, event_type: str, **details: Any) -> dict[str, Any]:
    event_id = execution.get("lastEventId", 0) + 1
    execution["lastEventId"] = event_id
    return {"id": event_id, "previousEventId": event_id - 1, "timestamp": now, "type": event_type, **details}


def record(commit: Commit, transition: Transition, version: int, settings: Settings) -> None:
    """Write ``transition`` (committed at ``version`` + 1) into ``commit``, tasks excepted.

    Tasks are left to the caller, who groups a whole batch's tasks into few RQ jobs (their
    payloads are sealed here, in place).
    """
    _seal_handed_tokens(commit, transition)
    execution = transition.execution
    _stop_abandoned_children(commit, execution)
    count_transition(commit.counts, transition)  # metrics
    commit.save_execution(execution, version + 1)
    commit.append_history(execution["name"], transition.history)
    commit.index_status(execution, transition.previous_status)
    for due, event in transition.timers:
        commit.add_timer(due, event)
    # After the additions: a timer set and cancelled in one transition is left unset.
    for event in transition.cancelled_timers:
        commit.remove_timer(event)
    for topic, message in transition.publishes:
        commit.publish(topic, message, settings.notification_stream_length)
    for queue, body, message_id, attributes in transition.messages:
        # As a SendMessage writes it: the receiver gets the body's text, its attributes and the
        # task's MessageId.
        message = OutgoingMessage(message_id or str(uuid.uuid4()), services.message_text(body), attributes)
        commit.add_stream_entry(commit.keys.queue(queue), message.fields())
    for activity, task in transition.activity_tasks:
        commit.add_stream_entry(commit.keys.activity_tasks(activity), {ACTIVITY_TASK_FIELD: json.dumps(task)})
    for request, token in transition.child_starts:
        commit.add_stream_entry(
            commit.keys.events, {EVENT_FIELD: json.dumps(start_event(execution, request, token))}
        )
    ended = execution["status"] in FINISHED_STATUSES and transition.previous_status not in FINISHED_STATUSES
    if ended and execution.get(NOTIFY_END):
        announcement = commit.keys.execution_ended(execution["name"])
        commit.add_stream_entry(announcement, {"status": execution["status"]})
        commit.expire(announcement, ENDED_KEEP_SECONDS)
    parent = execution.get(nested_executions.PARENT_TASK)
    if ended and isinstance(parent, dict):
        report = nested_executions.ended(execution, int(parent.get("sync", 1)))
        report |= {"execution": parent.get("execution"), "token": parent.get("token")}
        commit.add_stream_entry(commit.keys.events, {EVENT_FIELD: json.dumps(report)})


def _stop_abandoned_children(commit: Commit, execution: dict[str, Any]) -> None:
    """Stop each child a .sync task no longer waits for: it timed out, or its execution ended."""
    waiting = execution.get("tokens", {})
    abandoned = [t for t in execution.get(nested_executions.SYNC_CHILDREN, {}) if t not in waiting]
    for token in abandoned:
        cause = f"its parent execution {execution['name']} no longer waits for it"
        stop = {
            "type": "StopExecution",
            "execution": _forget_child(execution, token),
            "error": None,
            "cause": cause,
        }
        commit.add_stream_entry(commit.keys.events, {EVENT_FIELD: json.dumps(stop)})


def start_event(parent: dict[str, Any], request: nested_executions.ChildStart, token: str) -> dict[str, Any]:
    """The StartExecution event that asks the orchestrators for ``request``'s child (runtime.nested)."""
    return {
        "type": nested_executions.START_EXECUTION_EVENT,
        "execution": request.name,
        "token": token,
        "parent": parent["name"],
        "machine": request.machine,
        "input": request.input,
        "sync": request.sync,
        **({"sdk": True} if request.sdk else {}),
    }


def _seal_handed_tokens(commit: Commit, transition: Transition) -> None:
    if not transition.handed_tokens:
        return
    key = token_key(commit.connection, commit.keys)
    sealed = {token: seal(key, token) for token in transition.handed_tokens}
    for task in transition.tasks:
        task["payload"] = seal_handed_tokens(task["payload"], sealed)
    transition.publishes = [(topic, seal_handed_tokens(m, sealed)) for topic, m in transition.publishes]
    transition.messages = [
        (queue, seal_handed_tokens(body, sealed), message_id, seal_handed_tokens(attributes, sealed))
        for queue, body, message_id, attributes in transition.messages
    ]
    transition.activity_tasks = [
        (activity, {**task, "sealed": sealed[task["token"]]}) for activity, task in transition.activity_tasks
    ]
    transition.child_starts = [
        (replace(request, input=seal_handed_tokens(request.input, sealed)), token)
        for request, token in transition.child_starts
    ]
