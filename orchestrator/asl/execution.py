"""The execution state the core keeps, typed: execution, thread, fork, token, action, event.

An execution is one JSON document, stored as it is (the runtime keeps it in Redis between
events), so these are TypedDicts: plain dicts at run time, costing nothing on the hot path,
with their keys named here once. A stored execution carries ``"schema"``; one stored before
that field existed is version 1, and ``upgrade_execution`` brings any older document up to
``SCHEMA_VERSION`` when the core reads it. A document holding what a reader of
``SCHEMA_VERSION`` would misread says so with a higher version (``LEAN_FORK_SCHEMA``), so
that such a reader refuses it instead.

State modules see the run deciding a step through the ``Run`` protocol, never the execution
document itself: tokens, timers and sequence numbers change only through its methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, Protocol, TypeAlias, TypedDict

from orchestrator.asl.compiled import CompiledState
from orchestrator.asl.dataflow import StateData
from orchestrator.asl.definition import StateMachine
from orchestrator.asl.history import RawEvent, history_events

SCHEMA_VERSION = 2
"""The layout of the execution document this code writes; 1 is the layout before ``schema`` existed."""
LEAN_FORK_SCHEMA = 3
"""The layout of a document holding a fork that leaves out what layout 2 kept: its gathered
results, dropped once they were surely over the limit (``Fork.over``), or a large copy of a
Map's input that it finds again (no ``items``, no ``selected``). Code that reads only up to 2
would join nulls or fail on the missing copy, and must refuse the document instead."""
NEWEST_SCHEMA = LEAN_FORK_SCHEMA

RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED = "RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"
ACCOUNT = "000000000000"
REGION = "us-east-1"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/redstep"

TimerKind: TypeAlias = Literal["execution-timeout", "wait", "retry", "timeout", "heartbeat"]
TokenKind: TypeAlias = TimerKind | Literal["task", "dispatch"]
TIMER_KINDS: frozenset[str] = frozenset({"execution-timeout", "wait", "retry", "timeout", "heartbeat"})

TokenOwner: TypeAlias = list[Any]
"""``[thread id or None, kind]``: who waits on a token, and for what (a JSON array, not a tuple)."""


class RedrivePoint(TypedDict):
    """Where a redrive starts again: the top-level state that stopped, with its input and variables."""

    state: str
    input: Any
    vars: dict[str, Any]


class Fork(TypedDict):
    """A Parallel's or a Map's children, and the results gathered so far (the Map keys only for a Map)."""

    results: list[Any]
    pending: int
    children: list[str]
    next: NotRequired[int]
    running: NotRequired[int]
    failures: NotRequired[int]
    items: NotRequired[list[Any]]  # absent when found again by the state's ItemsPath (large items)
    selected: NotRequired[Any]  # absent when it is the state's input itself (large items)
    count: NotRequired[int]  # the number of items, when they are not kept
    max: NotRequired[int]
    toleratedCount: NotRequired[float]
    toleratedPercentage: NotRequired[float]
    bound: NotRequired[int]  # payload_bound of the results gathered, until they are measured
    measured: NotRequired[int]  # their size in bytes, once measured
    over: NotRequired[bool]  # the results together are surely over the limit: dropped, not kept
    batchEnds: NotRequired[list[int]]  # an ItemBatcher's batches: where each ends in the items
    batchInput: NotRequired[Any]  # its BatchInput, evaluated once, when the Map declares one


class Thread(TypedDict):
    """One thread of control: the top level (id "0"), a Parallel branch or a Map iteration."""

    id: str
    parent: str | None
    scope: str
    state: str
    input: Any
    vars: dict[str, Any]
    enteredAt: NotRequired[float]
    enteredEventId: NotRequired[int]
    lastEventId: NotRequired[int]
    retryCount: NotRequired[int]
    retries: NotRequired[dict[str, int]]
    tokens: NotRequired[list[str]]
    fork: NotRequired[Fork]
    slot: NotRequired[int]
    quiet: NotRequired[bool]
    item: NotRequired[Any]
    heartbeat: NotRequired[float]
    timeoutAt: NotRequired[float]  # when its task's TimeoutSeconds ends (the timeout timer's due time)
    heartbeatAt: NotRequired[float]  # when its task's HeartbeatSeconds ends unless a heartbeat comes


class Execution(TypedDict):
    """The stored execution. ``machineVersion`` is the runtime's: which registered version runs it."""

    schema: int
    name: str
    arn: str
    stateMachine: str
    status: str
    input: Any
    output: Any
    error: str | None
    cause: str | None
    startDate: float
    stopDate: float | None
    lastEventId: int
    seq: int
    threads: dict[str, Thread]
    tokens: dict[str, TokenOwner]
    redrivePoint: NotRequired[RedrivePoint]
    redriveCount: NotRequired[int]
    machineVersion: NotRequired[str]


# -- actions: what a step asks its caller to carry out ------------------------------------------


class RunTask(TypedDict):
    type: Literal["RunTask"]
    token: str | None
    function: str
    function_arn: str
    payload: Any
    attempt: int
    heartbeat_seconds: NotRequired[float]
    timeout_seconds: NotRequired[float]


class RunService(TypedDict):
    type: Literal["RunService"]
    token: str | None
    service: str
    parameters: Any
    sync: NotRequired[int]  # states:startExecution's .sync (1) or .sync:2 (2): wait for the child's end
    sdk: NotRequired[bool]  # the AWS SDK integration's result: the API's answer alone


class RunActivity(TypedDict):
    type: Literal["RunActivity"]
    token: str | None
    activity: str
    input: Any


class SetTimer(TypedDict):
    type: Literal["SetTimer"]
    token: str
    due: float


class CancelTimer(TypedDict):
    type: Literal["CancelTimer"]
    token: str


class ExecutionFinished(TypedDict):
    type: Literal["ExecutionFinished"]
    status: str


Action: TypeAlias = RunTask | RunService | RunActivity | SetTimer | CancelTimer | ExecutionFinished


class Event(TypedDict, total=False):
    """An event from outside: a task report, a timer firing, a heartbeat, a stop request."""

    type: str
    execution: str
    token: str
    output: Any
    error: str | None
    cause: str | None
    arrivedAt: float  # when it reached the orchestrators (the runtime stamps it); else when taken


ARRIVED_AT = "arrivedAt"


def arrival(event: Event, now: float) -> float:
    """When ``event`` reached the orchestrators: its ``arrivedAt``, never after ``now`` (when it is taken).

    A report that came in time but was taken late (the orchestrators were away, or busy) met
    its deadlines all the same; one with no stamp, or a stamp past ``now``, is taken as of now.
    """
    arrived = event.get(ARRIVED_AT)
    if isinstance(arrived, int | float) and not isinstance(arrived, bool) and 0 <= arrived < now:
        return float(arrived)
    return now


# -- the stored document --------------------------------------------------------------------------


def state_machine_arn(name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"


def execution_arn(machine: str, name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{machine}:{name}"


def new_execution(machine_name: str, name: str, input: Any, now: float, arn: str | None = None) -> Execution:
    """A RUNNING execution of ``machine_name`` that has not entered a state yet."""
    return {
        "schema": SCHEMA_VERSION,
        "name": name,
        "arn": arn or execution_arn(machine_name, name),
        "stateMachine": machine_name,
        "status": RUNNING,
        "input": input,
        "output": None,
        "error": None,
        "cause": None,
        "startDate": now,
        "stopDate": None,
        "lastEventId": 0,
        "seq": 0,
        "threads": {},
        "tokens": {},
    }


def upgrade_execution(stored: dict[str, Any]) -> Execution:
    """Bring a stored execution up to ``SCHEMA_VERSION``, in place; one without ``schema`` is version 1.

    Version 1 had today's keys, except that an execution the runtime failed before it started
    (its machine unknown) lacked the ones it never used.

    Raises:
        ValueError: when the document was written by a newer version of redstep, or names no
            version this code knows.
    """
    version = stored.get("schema", 1)
    if version in (SCHEMA_VERSION, LEAN_FORK_SCHEMA):
        return stored  # type: ignore[return-value]
    if type(version) is not int or not 1 <= version < SCHEMA_VERSION:
        raise ValueError(
            f"execution {stored.get('name')!r} has schema {version!r}; this redstep reads schema "
            f"1 to {NEWEST_SCHEMA} (a newer redstep wrote it?)"
        )
    for key in ("output", "error", "cause", "stopDate"):
        stored.setdefault(key, None)
    stored.setdefault("seq", 0)
    stored.setdefault("threads", {})
    stored.setdefault("tokens", {})
    stored["schema"] = SCHEMA_VERSION
    return stored  # type: ignore[return-value]


# -- one call of the core ---------------------------------------------------------------------------


class InProcess(Protocol):
    """A caller that carries out actions in-process (the local runner), so that a whole
    execution runs in one call of the core instead of a step per event.

    It answers only as the step-by-step course would go, so an execution takes the same
    course, with the same history, either way.
    """

    def run_task_now(self, action: RunTask) -> Event | None:
        """Run the task ``action`` asks for now, and return the event reporting its result,
        if that event would be the very next one delivered; otherwise do nothing and return
        None (the action then waits its turn with the others)."""

    def next_event(self, actions: list[Action]) -> tuple[float, Event] | None:
        """Take the actions decided so far (emptying the list), and return the next event
        with the time it happens, or None when nothing more is coming."""


@dataclass(slots=True)
class Step:
    """What one call of the core decided: the updated execution, actions to carry out, new history."""

    execution: Execution
    actions: list[Action] = field(default_factory=list)
    events: list[RawEvent] = field(default_factory=list)

    @property
    def history(self) -> list[dict[str, Any]]:
        """The new history events, in AWS's shape."""
        return history_events(self.events)


class Run(Protocol):
    """What a state module may do with the run deciding a step (``orchestrator.asl.runner.Run``).

    Threads and forks are the state modules' to edit; the execution document, its tokens
    and its sequence numbers change only through these methods.
    """

    now: float
    machine: StateMachine
    actions: list[Action]
    ready: list[str]
    in_process: InProcess | None
    # The last value whose ``payload_bound`` the run worked out, with that bound.
    known_bound: tuple[Any, int]

    # history
    def record(self, thread: Thread | None, event_type: str, **details: Any) -> int: ...
    def record_event(self, thread: Thread | None, event_type: str, details: dict[str, Any]) -> int: ...
    def record_state(self, thread: Thread, event_type: str, name: str, key: str, value: Any) -> int: ...

    # tokens and timers
    def next_seq(self) -> int: ...
    def new_token(self, thread: Thread | None, kind: TokenKind) -> str: ...
    def set_timer(self, thread: Thread | None, kind: TimerKind, due: float) -> str: ...
    def outlives_execution(self, due: float) -> bool: ...
    def token_kind(self, token: str) -> str | None: ...
    def drop_tokens(self, thread: Thread) -> None: ...
    def drop_timers(self, thread: Thread, kind: TimerKind) -> None: ...

    # the document
    def require_schema(self, version: int) -> None: ...

    # threads
    def spawn(
        self, parent: Thread, scope: str, state: str, input: Any, variables: dict[str, Any], slot: int
    ) -> Thread: ...
    def find_thread(self, thread_id: str) -> Thread | None: ...
    def remove_thread(self, thread: Thread) -> None: ...
    def data(self, thread: Thread) -> StateData: ...
    def context_object(self, thread: Thread, state: CompiledState) -> dict[str, Any]: ...

    # moving on
    def goto(self, thread: Thread, next_state: str, output: Any) -> None: ...
    def advance_or_finish(self, thread: Thread, state: CompiledState, output: Any) -> None: ...
    def assign(self, thread: Thread, assignments: dict[str, Any]) -> None: ...
    def thread_succeeded(self, thread: Thread, output: Any) -> None: ...
    def thread_failed(self, thread: Thread, error: str | None, cause: str | None) -> None: ...
    def fail_state(
        self,
        thread: Thread,
        data: StateData,
        error: str | None,
        cause: str | None,
        *,
        reported: bool = False,
        matched_by_all: bool = False,
    ) -> None: ...
