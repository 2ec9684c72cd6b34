"""One call of the core on one execution: threads, tokens, history, errors, Retry and Catch.

State types live in their own modules; each exposes ``enter`` (run the state for a thread)
and, where it waits, handlers for the event that resumes it. This module is what they share.
"""

from __future__ import annotations

from typing import Any

from orchestrator.asl.compiled import CompiledState
from orchestrator.asl.dataflow import StateData
from orchestrator.asl.definition import ROOT, StateMachine
from orchestrator.asl.engine import (
    ABORTED,
    FAILED,
    SUCCEEDED,
    TIMED_OUT,
    InProcess,
    Step,
    context_object,
    execution_context,
    state_data,
)
from orchestrator.asl.errors import RUNTIME, StatesError
from orchestrator.asl.fork_states import child_failed, child_succeeded
from orchestrator.asl.history import RawEvent
from orchestrator.asl.retry import find_catcher, retry_delay
from orchestrator.asl.state_types import enter, restart, resume

# AWS ends a Standard execution whose history reaches this many events; it also stops a
# definition that loops forever from running forever here.
MAX_HISTORY_EVENTS = 25_000
HISTORY_LIMIT_CAUSE = f"The execution reached the maximum number of history events ({MAX_HISTORY_EVENTS})."
_FINISHED_EVENTS = {FAILED: "ExecutionFailed", TIMED_OUT: "ExecutionTimedOut", ABORTED: "ExecutionAborted"}
_TIMER_KINDS = frozenset({"execution-timeout", "wait", "retry", "timeout", "heartbeat"})


class Run:
    """The state of one ``start_execution`` / ``advance`` call while it decides."""

    __slots__ = (
        "_context_parts",
        "actions",
        "execution",
        "firing",
        "history",
        "in_process",
        "machine",
        "now",
        "ready",
    )

    def __init__(self, machine: StateMachine, execution: dict[str, Any], now: float) -> None:
        self.machine = machine
        self.execution = execution
        self.now = now
        self.actions: list[dict[str, Any]] = []
        self.history: list[RawEvent] = []
        self.ready: list[str] = []
        self.in_process: InProcess | None = None
        # The token of the timer whose firing is being handled: it needs no cancelling.
        self.firing: str | None = None
        self._context_parts: tuple[dict[str, Any], dict[str, Any]] | None = None

    def context_parts(self) -> tuple[dict[str, Any], dict[str, Any]]:
        if self._context_parts is None:
            self._context_parts = execution_context(self)
        return self._context_parts

    def step(self) -> Step:
        return Step(self.execution, self.actions, self.history)

    # -- history -----------------------------------------------------------------------------

    def record(self, thread: dict[str, Any] | None, event_type: str, **details: Any) -> int:
        """Record a history event (see ``orchestrator.asl.history``); returns its id."""
        return self.record_event(thread, event_type, details)

    def record_event(self, thread: dict[str, Any] | None, event_type: str, details: dict[str, Any]) -> int:
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
            thread["lastEventId"] = event_id
        execution["lastEventId"] = event_id
        self.history.append((event_id, previous, self.now, event_type, details))
        return event_id

    def record_state(self, thread: dict[str, Any], event_type: str, name: str, key: str, value: Any) -> int:
        """Record a state's Entered or Exited event (``name`` plus ``key``: its input or output).

        Every state records two of these, so they take the thread's path of ``record_event``
        written out, without a details dict.
        """
        if "quiet" in thread:
            return self.execution["lastEventId"]
        execution = self.execution
        event_id = execution["lastEventId"] + 1
        self.history.append((event_id, thread.get("lastEventId", 0), self.now, event_type, name, key, value))
        thread["lastEventId"] = execution["lastEventId"] = event_id
        return event_id

    # -- threads and tokens ------------------------------------------------------------------

    def new_token(self, thread: dict[str, Any] | None, kind: str) -> str:
        execution = self.execution
        execution["seq"] += 1
        token = f"{execution['name']}:{execution['seq']}"
        execution["tokens"][token] = [thread["id"] if thread else None, kind]
        if thread is not None:
            thread.setdefault("tokens", []).append(token)
        return token

    def drop_tokens(self, thread: dict[str, Any]) -> None:
        for token in thread.pop("tokens", []):
            self.forget_token(token)

    def forget_token(self, token: str) -> None:
        """Stop waiting on ``token``; a timer it names that has not fired is cancelled.

        A timer left in place would fire later for nothing, and hold memory until it did: a
        task's hour-long TimeoutSeconds would outlive the task by an hour.
        """
        owner = self.execution["tokens"].pop(token, None)
        if owner is not None and owner[1] in _TIMER_KINDS and token != self.firing:
            self.actions.append({"type": "CancelTimer", "token": token})

    def spawn(
        self,
        parent: dict[str, Any] | None,
        scope: str,
        state: str,
        input: Any,
        variables: dict[str, Any],
        **extra: Any,
    ) -> dict[str, Any]:
        execution = self.execution
        execution["seq"] += 1
        thread_id = "0" if parent is None else f"{parent['id']}.{execution['seq']}"
        thread = {"id": thread_id, "parent": parent["id"] if parent else None, "scope": scope}
        thread.update(state=state, input=input, vars=variables, **extra)
        if parent is not None:
            thread["lastEventId"] = parent.get("lastEventId", 0)
        execution["threads"][thread_id] = thread
        return thread

    def start_root(self, state: str, input: Any, variables: dict[str, Any]) -> None:
        """Make the top-level thread, ready to enter ``state`` (``spawn`` for the root, written out)."""
        execution = self.execution
        execution["seq"] += 1
        execution["threads"]["0"] = {
            "id": "0",
            "parent": None,
            "scope": ROOT,
            "state": state,
            "input": input,
            "vars": variables,
        }
        self.ready.append("0")

    def thread(self, thread_id: str) -> dict[str, Any]:
        return self.execution["threads"][thread_id]

    def remove_thread(self, thread: dict[str, Any]) -> None:
        """Forget a thread and everything under it, invalidating their tokens."""
        for child_id in thread.get("fork", {}).get("children", []):
            child = self.execution["threads"].get(child_id)
            if child is not None:
                self.remove_thread(child)
        self.drop_tokens(thread)
        self.execution["threads"].pop(thread["id"], None)

    def data(self, thread: dict[str, Any]) -> StateData:
        return state_data(self, thread)

    def context_object(self, thread: dict[str, Any], state: CompiledState) -> dict[str, Any]:
        return context_object(self, thread, state)

    # -- driving -----------------------------------------------------------------------------

    def drive(self) -> None:
        """Enter states of ready threads until every thread waits or the execution ends.

        Driven ``in_process``, go on with each event it hands over while the execution runs.
        """
        execution = self.execution
        ready = self.ready
        while True:
            while ready and execution["status"] == "RUNNING":
                if execution["lastEventId"] >= MAX_HISTORY_EVENTS:
                    self.finish(FAILED, error=RUNTIME, cause=HISTORY_LIMIT_CAUSE)
                    return
                # ``finish`` replaces the threads dict, so it is looked up on every turn.
                thread = execution["threads"].get(ready.pop(0))
                if thread is not None:
                    enter(self, thread)
            if self.in_process is None or execution["status"] != "RUNNING":
                return
            coming = self.in_process.next_event(self.actions)
            if coming is None:
                return
            self.now, event = coming
            self.handle(event)

    def handle(self, event: dict[str, Any]) -> None:
        """Route an outside event to the thread whose token it carries."""
        if self.execution["lastEventId"] >= MAX_HISTORY_EVENTS:
            self.finish(FAILED, error=RUNTIME, cause=HISTORY_LIMIT_CAUSE)
            return
        if event.get("type") == "StopExecution":
            self.stop(event.get("error"), event.get("cause"))
            return
        owner = self.execution["tokens"].get(event.get("token"))
        if owner is None:
            return
        if event.get("type") == "TimerFired":
            self.firing = event["token"]
        thread_id, kind = owner
        if (kind in _TIMER_KINDS) != (event.get("type") == "TimerFired"):
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

    def goto(self, thread: dict[str, Any], next_state: str, output: Any) -> None:
        thread["state"] = next_state
        thread["input"] = output
        thread.pop("retries", None)
        thread["retryCount"] = 0
        self.ready.append(thread["id"])

    def advance_or_finish(self, thread: dict[str, Any], state: CompiledState, output: Any) -> None:
        """Follow ``Next``, or end the thread with ``output`` when the state is an End state."""
        if state.end:
            self.thread_succeeded(thread, output)
            return
        # ``goto``, written out: every state that does not end comes here. Validation gives
        # each of them a Next.
        thread["state"] = state.next
        thread["input"] = output
        thread.pop("retries", None)
        thread["retryCount"] = 0
        self.ready.append(thread["id"])

    def assign(self, thread: dict[str, Any], assignments: dict[str, Any]) -> None:
        if assignments:
            thread["vars"] = {**thread["vars"], **assignments}

    # -- endings -----------------------------------------------------------------------------

    def thread_succeeded(self, thread: dict[str, Any], output: Any) -> None:
        if thread["parent"] is None:
            self.finish(SUCCEEDED, output=output)
            return
        parent = self.thread(thread["parent"])
        self.remove_thread(thread)
        child_succeeded(self, parent, thread, output)

    def thread_failed(self, thread: dict[str, Any], error: str, cause: str | None) -> None:
        if thread["parent"] is None:
            self.finish(FAILED, error=error, cause=cause)
            return
        parent = self.thread(thread["parent"])
        self.remove_thread(thread)
        child_failed(self, parent, thread, error, cause)

    def state_failed(
        self, thread: dict[str, Any], error: str, cause: str | None, *, exited_type: str | None = None
    ) -> None:
        """A state raised ``error``: retry it, catch it, or fail its thread."""
        data = self.data(thread)
        state = data.state
        if error == RUNTIME:
            # States.Runtime is neither retried nor caught, whatever the definition says.
            self.thread_failed(thread, error, cause)
            return
        retry = retry_delay(state.get("Retry"), thread, error, self.execution["name"])
        if retry is not None:
            thread["retryCount"] = thread.get("retryCount", 0) + 1
            if retry <= 0:
                restart(self, thread)
                return
            token = self.new_token(thread, "retry")
            self.actions.append({"type": "SetTimer", "token": token, "due": self.now + retry})
            return
        if state["Type"] == "Map":
            self.record(thread, "MapStateFailed")
        catcher = find_catcher(state.get("Catch"), error)
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
