"""One call of the core on one execution: threads, tokens, history, errors, Retry and Catch.

State types live in their own modules; each exposes ``enter`` (run the state for a thread)
and, where it waits, handlers for the event that resumes it. This module is what they share.
"""

from __future__ import annotations

from typing import Any

from orchestrator.asl.compiled import CompiledState
from orchestrator.asl.dataflow import StateData, iso_time
from orchestrator.asl.definition import ROOT, StateMachine
from orchestrator.asl.errors import DATA_LIMIT_EXCEEDED, QUERY_EVALUATION_ERROR, RUNTIME, StatesError
from orchestrator.asl.execution import (
    ABORTED,
    FAILED,
    ROLE_ARN,
    RUNNING,
    SUCCEEDED,
    TIMED_OUT,
    TIMER_KINDS,
    Action,
    Event,
    Execution,
    InProcess,
    Step,
    Thread,
    TimerKind,
    TokenKind,
    arrival,
    state_machine_arn,
)
from orchestrator.asl.fork_states import child_failed, child_succeeded
from orchestrator.asl.history import RawEvent
from orchestrator.asl.json_values import NO_BOUND, exceeds_payload_limit
from orchestrator.asl.retry import find_catcher, retry_delay
from orchestrator.asl.state_types import enter, restart, resume
from orchestrator.asl.task_state import data_limit_cause
from orchestrator.asl.variables import check_assignment

# AWS ends a Standard execution whose history reaches this many events; it also stops a
# definition that loops forever from running forever here. "Avoid reaching the history
# quota" (AWS Step Functions Developer Guide): "If the event number 25,000 is
# ExecutionSucceeded, the execution finishes successfully. If the event number 25,000 isn't
# ExecutionSucceeded, the ExecutionFailed event is logged": the history never goes past it.
MAX_HISTORY_EVENTS = 25_000
HISTORY_LIMIT_CAUSE = f"The execution reached the maximum number of history events ({MAX_HISTORY_EVENTS})."
# "Quotas for Standard Workflows" (AWS Step Functions Developer Guide): "Maximum execution
# time: 1 year. If an execution runs for more than the 1-year maximum, it will fail with a
# States.Timeout error"; the Wait state's page: "the maximum wait time that you can specify
# for Standard Workflows ... is one year".
MAX_EXECUTION_SECONDS = 365 * 24 * 3600
# The events that may be the last one allowed: the ones that end the execution.
_ENDING_EVENTS = frozenset({"ExecutionSucceeded", "ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"})


# No value's payload bound is known yet: an object no state sees, with no bound.
_NOTHING_KNOWN = (object(), NO_BOUND)


class HistoryLimitReached(Exception):
    """The next event would be the last one the history may hold, and it does not end the execution."""


_FINISHED_EVENTS = {FAILED: "ExecutionFailed", TIMED_OUT: "ExecutionTimedOut", ABORTED: "ExecutionAborted"}
# States whose errors may be retried and caught; in any other state an error fails the thread.
_HANDLES_ERRORS = frozenset({"Task", "Parallel", "Map"})


class Run:
    """The state of one ``start_execution`` / ``advance`` call while it decides.

    State modules see it as ``orchestrator.asl.execution.Run``, the protocol it implements.
    """

    __slots__ = (
        "_context_parts",
        "actions",
        "execution",
        "firing",
        "history",
        "in_process",
        "known_bound",
        "machine",
        "now",
        "ready",
    )

    def __init__(self, machine: StateMachine, execution: Execution, now: float) -> None:
        self.machine = machine
        self.execution = execution
        self.now = now
        self.actions: list[Action] = []
        self.history: list[RawEvent] = []
        self.ready: list[str] = []
        self.in_process: InProcess | None = None
        # The last value whose payload bound was worked out, with the bound: a state's output
        # is the next state's input, and knowing its bound spares a walk through it.
        self.known_bound: tuple[Any, int] = _NOTHING_KNOWN
        # The token of the timer whose firing is being handled: it needs no cancelling.
        self.firing: str | None = None
        self._context_parts: tuple[dict[str, Any], dict[str, Any]] | None = None

    def context_parts(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The parts of the context object that stay the same for the whole execution."""
        if self._context_parts is None:
            execution, machine = self.execution, self.machine
            self._context_parts = (
                {
                    "Id": execution["arn"],
                    "Input": execution["input"],
                    "StartTime": iso_time(execution["startDate"]),
                    "Name": execution["name"],
                    "RoleArn": ROLE_ARN,
                    "RedriveCount": execution.get("redriveCount", 0),
                },
                {"Id": state_machine_arn(machine.name), "Name": machine.name},
            )
        return self._context_parts

    def step(self) -> Step:
        return Step(self.execution, self.actions, self.history)

    def require_schema(self, version: int) -> None:
        """Have the document say it is of layout ``version`` (or later): older code must refuse it."""
        if self.execution.get("schema", 1) < version:
            self.execution["schema"] = version

    # -- history -----------------------------------------------------------------------------

    def record(self, thread: Thread | None, event_type: str, **details: Any) -> int:
        """Record a history event (see ``orchestrator.asl.history``); returns its id."""
        return self.record_event(thread, event_type, details)

    def record_event(self, thread: Thread | None, event_type: str, details: dict[str, Any]) -> int:
        """``record``, with the details given as a dict (which the history keeps: not to be changed)."""
        execution = self.execution
        event_id = execution["lastEventId"] + 1
        if thread is None:
            previous = event_id - 1
        elif "quiet" in thread:
            # Children of a distributed Map run as executions of their own; the parent's
            # history shows only the map run.
            return event_id - 1
        else:
            previous = thread.get("lastEventId", 0)
        if event_id >= MAX_HISTORY_EVENTS and event_type not in _ENDING_EVENTS:
            raise HistoryLimitReached
        if thread is not None:
            thread["lastEventId"] = event_id
        execution["lastEventId"] = event_id
        self.history.append((event_id, previous, self.now, event_type, details))
        return event_id

    def record_state(self, thread: Thread, event_type: str, name: str, key: str, value: Any) -> int:
        """Record a state's Entered or Exited event (``name`` plus ``key``: its input or output).

        Every state records two of these, so they take the thread's path of ``record_event``
        written out, without a details dict.
        """
        if "quiet" in thread:
            return self.execution["lastEventId"]
        execution = self.execution
        event_id = execution["lastEventId"] + 1
        if event_id >= MAX_HISTORY_EVENTS:
            raise HistoryLimitReached
        self.history.append((event_id, thread.get("lastEventId", 0), self.now, event_type, name, key, value))
        thread["lastEventId"] = execution["lastEventId"] = event_id
        return event_id

    # -- threads and tokens ------------------------------------------------------------------

    def next_seq(self) -> int:
        """Count one more token or thread: the number that names it."""
        execution = self.execution
        execution["seq"] += 1
        return execution["seq"]

    def new_token(self, thread: Thread | None, kind: TokenKind) -> str:
        """A token ``thread`` (None: the execution itself) waits on for ``kind``: ``<name>:<seq>``."""
        execution = self.execution
        token = f"{execution['name']}:{self.next_seq()}"
        execution["tokens"][token] = [thread["id"] if thread else None, kind]
        if thread is not None:
            thread.setdefault("tokens", []).append(token)
        return token

    def set_timer(self, thread: Thread | None, kind: TimerKind, due: float) -> str:
        """Wait on a new token of ``kind`` that a timer fires at ``due``; returns the token."""
        token = self.new_token(thread, kind)
        self.actions.append({"type": "SetTimer", "token": token, "due": due})
        return token

    def outlives_execution(self, due: float) -> bool:
        """Whether ``due`` comes after the longest an execution may run: a year from its start.

        If it does, the execution is set to time out at that year's end (once), as AWS ends an
        execution that runs longer; whatever waits until ``due`` need not wait at all.
        """
        execution = self.execution
        end = execution["startDate"] + MAX_EXECUTION_SECONDS
        if due <= end:
            return False
        own_timeout = self.machine.timeout_seconds
        if own_timeout and execution["startDate"] + own_timeout <= end:
            return True  # its own TimeoutSeconds ends it first: that timer is set already
        timers = sum(1 for owner in execution["tokens"].values() if owner[1] == "execution-timeout")
        if timers <= (1 if own_timeout else 0):
            self.set_timer(None, "execution-timeout", end)
        return True

    def token_kind(self, token: str) -> str | None:
        """What ``token`` waits for, or None when nobody waits on it any more."""
        owner = self.execution["tokens"].get(token)
        return None if owner is None else owner[1]

    def drop_tokens(self, thread: Thread) -> None:
        for token in thread.pop("tokens", []):
            self.forget_token(token)

    def drop_timers(self, thread: Thread, kind: TimerKind) -> None:
        """Stop waiting on ``thread``'s timers of ``kind``; its other tokens stay."""
        tokens = thread.get("tokens", [])
        for token in [token for token in tokens if self.token_kind(token) == kind]:
            self.forget_token(token)
            tokens.remove(token)

    def forget_token(self, token: str) -> None:
        """Stop waiting on ``token``; a timer it names that has not fired is cancelled.

        A timer left in place would fire later for nothing, and hold memory until it did: a
        task's hour-long TimeoutSeconds would outlive the task by an hour.
        """
        owner = self.execution["tokens"].pop(token, None)
        if owner is not None and owner[1] in TIMER_KINDS and token != self.firing:
            self.actions.append({"type": "CancelTimer", "token": token})

    def spawn(
        self, parent: Thread, scope: str, state: str, input: Any, variables: dict[str, Any], slot: int
    ) -> Thread:
        """Make a child thread of ``parent`` (a Parallel branch or Map iteration) in ``slot``."""
        thread_id = f"{parent['id']}.{self.next_seq()}"
        thread: Thread = {
            "id": thread_id,
            "parent": parent["id"],
            "scope": scope,
            "state": state,
            "input": input,
            "vars": variables,
            "slot": slot,
            "lastEventId": parent.get("lastEventId", 0),
        }
        self.execution["threads"][thread_id] = thread
        return thread

    def start_root(self, state: str, input: Any, variables: dict[str, Any]) -> None:
        """Make the top-level thread, ready to enter ``state`` (``spawn`` for the root, written out)."""
        self.next_seq()  # the root counts as a thread, as every child does
        self.execution["threads"]["0"] = {
            "id": "0",
            "parent": None,
            "scope": ROOT,
            "state": state,
            "input": input,
            "vars": variables,
        }
        self.ready.append("0")

    def thread(self, thread_id: str) -> Thread:
        return self.execution["threads"][thread_id]

    def find_thread(self, thread_id: str) -> Thread | None:
        return self.execution["threads"].get(thread_id)

    def remove_thread(self, thread: Thread) -> None:
        """Forget a thread and everything under it, invalidating their tokens."""
        for child_id in thread.get("fork", {}).get("children", []):
            child = self.execution["threads"].get(child_id)
            if child is not None:
                self.remove_thread(child)
        self.drop_tokens(thread)
        self.execution["threads"].pop(thread["id"], None)

    def data(self, thread: Thread) -> StateData:
        """The view of its input, context and variables that ``thread``'s current state has."""
        compiled = self.machine.compiled_state(thread["scope"], thread["state"])
        return StateData(compiled, thread["input"], thread["vars"], self, thread)

    def context_object(self, thread: Thread, state: CompiledState) -> dict[str, Any]:
        """The context object (``$$``) that ``state`` sees in ``thread``."""
        execution_part, machine_part = self.context_parts()
        context: dict[str, Any] = {
            "Execution": execution_part,
            "StateMachine": machine_part,
            "State": {"EnteredTime": iso_time(thread.get("enteredAt", self.now)), "Name": state.name},
        }
        if state.type == "Task":
            context["State"]["RetryCount"] = thread.get("retryCount", 0)
        if "item" in thread:
            context["Map"] = {"Item": thread["item"]}
        return context

    # -- driving -----------------------------------------------------------------------------

    def drive(self) -> None:
        """Enter states of ready threads until every thread waits or the execution ends.

        Driven ``in_process``, go on with each event it hands over while the execution runs.
        """
        try:
            self._drive()
        except HistoryLimitReached:
            self.finish(FAILED, error=RUNTIME, cause=HISTORY_LIMIT_CAUSE)

    def _drive(self) -> None:
        execution = self.execution
        ready = self.ready
        while True:
            while ready and execution["status"] == RUNNING:
                # ``finish`` replaces the threads dict, so it is looked up on every turn.
                thread = execution["threads"].get(ready.pop(0))
                if thread is not None:
                    enter(self, thread)
            if self.in_process is None or execution["status"] != RUNNING:
                return
            coming = self.in_process.next_event(self.actions)
            if coming is None:
                return
            self.now, event = coming
            self._handle(event)

    def handle(self, event: Event) -> None:
        """Route an outside event to the thread whose token it carries."""
        try:
            self._handle(event)
        except HistoryLimitReached:
            self.finish(FAILED, error=RUNTIME, cause=HISTORY_LIMIT_CAUSE)

    def _handle(self, event: Event) -> None:
        if self._arrived_past_timeout(event):
            self.time_out()
            return
        if event.get("type") == "StopExecution":
            self.stop(event.get("error"), event.get("cause"))
            return
        owner = self.execution["tokens"].get(event.get("token", ""))
        if owner is None:
            return
        if event.get("type") == "TimerFired":
            self.firing = event["token"]
        thread_id, kind = owner
        if (kind in TIMER_KINDS) != (event.get("type") == "TimerFired"):
            # A timer's token answers only its own firing, and a task's token only reports:
            # a report that names a timer's token must not fire it early.
            return
        if kind == "execution-timeout":
            self.time_out()
            return
        thread = self.execution["threads"].get(thread_id)
        if thread is None:
            return
        resume(self, thread, kind, event)

    def _arrived_past_timeout(self, event: Event) -> bool:
        """Whether ``event`` arrived after the execution's own TimeoutSeconds ended.

        The execution had timed out by then, as on AWS, though the event was taken before the
        timeout's timer fired (the orchestrators were away or busy when it came due). Timers are
        judged by their due times instead; a redriven execution's first deadline has passed.
        """
        timeout = self.machine.timeout_seconds
        execution = self.execution
        if not timeout or event.get("type") == "TimerFired" or execution.get("redriveCount"):
            return False
        return arrival(event, self.now) > execution["startDate"] + timeout

    def goto(self, thread: Thread, next_state: str, output: Any) -> None:
        thread["state"] = next_state
        thread["input"] = output
        thread.pop("retries", None)
        thread["retryCount"] = 0
        self.ready.append(thread["id"])

    def advance_or_finish(self, thread: Thread, state: CompiledState, output: Any) -> None:
        """Follow ``Next``, or end the thread with ``output`` when the state is an End state."""
        if state.end:
            self.thread_succeeded(thread, output)
            return
        # ``goto``, written out: every state that does not end comes here. Validation gives
        # each of them a Next.
        thread["state"] = state.next  # type: ignore[typeddict-item]
        thread["input"] = output
        thread.pop("retries", None)
        thread["retryCount"] = 0
        self.ready.append(thread["id"])

    def assign(self, thread: Thread, assignments: dict[str, Any]) -> None:
        """Set ``thread``'s variables, or raise States.DataLimitExceeded past AWS's limits on them."""
        if assignments:
            check_assignment(thread["state"], assignments, thread["vars"])
            thread["vars"] = {**thread["vars"], **assignments}

    # -- endings -----------------------------------------------------------------------------

    def thread_succeeded(self, thread: Thread, output: Any) -> None:
        if thread["parent"] is None:
            self.finish(SUCCEEDED, output=output)
            return
        parent = self.thread(thread["parent"])
        self.remove_thread(thread)
        child_succeeded(self, parent, thread, output)

    def thread_failed(self, thread: Thread, error: str | None, cause: str | None) -> None:
        if thread["parent"] is None:
            self.finish(FAILED, error=error, cause=cause)
            return
        parent = self.thread(thread["parent"])
        self.remove_thread(thread)
        child_failed(self, parent, thread, error, cause)

    def fail_state(
        self,
        thread: Thread,
        data: StateData,
        error: str | None,
        cause: str | None,
        *,
        reported: bool = False,
        matched_by_all: bool = False,
    ) -> None:
        """An error in ``thread``'s state: raised while the state ran, or ``reported`` by its task or branch.

        AWS names the state and the event that entered it in the cause of an error the state
        raised itself, and records a failed JSONata evaluation as an event of its own.
        ``matched_by_all``: see ``StatesError``.
        """
        if not reported:
            if cause is not None:
                entered = thread.get("enteredEventId", 0)
                cause = (
                    f"An error occurred while executing the state '{thread['state']}' "
                    f"(entered at the event id #{entered}). {cause}"
                )
            if error == QUERY_EVALUATION_ERROR:
                self.record(thread, "EvaluationFailed", error=error, cause=cause, state=thread["state"])
        state_type = data.state["Type"]
        if state_type in _HANDLES_ERRORS:
            self.state_failed(
                thread, error, cause, exited_type=f"{state_type}StateExited", matched_by_all=matched_by_all
            )
        else:
            self.thread_failed(thread, error, cause)

    def state_failed(
        self,
        thread: Thread,
        error: str | None,
        cause: str | None,
        *,
        exited_type: str | None = None,
        matched_by_all: bool = False,
    ) -> None:
        """A state raised ``error``: retry it, catch it, or fail its thread."""
        data = self.data(thread)
        state = data.state
        if error == RUNTIME:
            # States.Runtime is neither retried nor caught, whatever the definition says.
            self.thread_failed(thread, error, cause)
            return
        retry = retry_delay(
            state.get("Retry"), thread, error, self.execution["name"], matched_by_all=matched_by_all
        )
        if retry is not None:
            thread["retryCount"] = thread.get("retryCount", 0) + 1
            if retry <= 0:
                restart(self, thread)
                return
            self.set_timer(thread, "retry", self.now + retry)
            return
        if state["Type"] == "Map":
            self.record(thread, "MapStateFailed")
        catcher = find_catcher(state.get("Catch"), error, matched_by_all=matched_by_all)
        if catcher is None:
            if state["Type"] == "Parallel":
                self.record(thread, "ParallelStateFailed")
            self.thread_failed(thread, error, cause)
            return
        error_output: dict[str, Any] = {"Error": error}
        if cause is not None:
            error_output["Cause"] = cause
        try:
            output = data.catch_output(catcher, error_output)
            self.assign(thread, data.assignments(catcher.get("Assign"), errorOutput=error_output))
        except StatesError as failure:
            self.thread_failed(thread, failure.error, failure.cause)
            return
        if exceeds_payload_limit(output):
            # The error output put into the input by ResultPath is this state's output, under
            # the same limit as any other (see ``task_state.data_limit_error``).
            self.thread_failed(thread, DATA_LIMIT_EXCEEDED, data_limit_cause(thread["state"]))
            return
        if exited_type:
            self.record(thread, exited_type, name=thread["state"], output=output)
        self.goto(thread, catcher["Next"], output)

    def finish(
        self, status: str, *, output: Any = None, error: str | None = None, cause: str | None = None
    ) -> None:
        execution = self.execution
        if status == SUCCEEDED:
            self.record_event(None, "ExecutionSucceeded", {"output": output})
        else:
            root = execution["threads"].get("0")
            if root is not None:
                # Where a redrive starts again: the top-level state that failed, with its input.
                execution["redrivePoint"] = {
                    "state": root["state"],
                    "input": root["input"],
                    "vars": root["vars"],
                }
            details: dict[str, Any] = {}
            if error is not None:
                details["error"] = error
            if cause is not None:
                details["cause"] = cause
            self.record_event(None, _FINISHED_EVENTS[status], details)
        execution["status"] = status
        execution["output"] = output
        execution["error"] = error
        execution["cause"] = cause
        execution["stopDate"] = self.now
        for token in list(execution["tokens"]):
            self.forget_token(token)
        execution["threads"] = {}
        execution["tokens"] = {}
        self.ready.clear()
        self.actions.append({"type": "ExecutionFinished", "status": status})

    def time_out(self) -> None:
        self.finish(TIMED_OUT)

    def stop(self, error: str | None, cause: str | None) -> None:
        self.finish(ABORTED, error=error, cause=cause)
