"""``redstep doctor``: check every invariant of the stored state and say what breaks each one.

The invariants (each :class:`Problem` names the one it breaks):

``readable-execution``
    ``{p}:exec:{<name>}`` is a hash whose ``execution`` field is a JSON object naming that
    execution, with a known status and an integer ``lastEventId``, and whose ``version`` is an integer.
``execution-index``, ``status-index``, ``closed-index``
    Every execution is in ``{p}:executions`` and in the status index of its status only;
    a finished one is in ``{p}:closed`` (or retention never removes it), a running one is not.
``history-length``
    ``{p}:history:{<name>}`` is a list of exactly ``lastEventId`` events.
``index-without-execution``, ``history-without-execution``
    Nothing is orphaned: no index entry or history names an execution that does not exist.
``index-type``
    Every index key is a sorted set.
``something-moves-it``
    Every RUNNING execution has something that will move it on (see
    :mod:`orchestrator.runtime.movers`): a queued or claimed job, a lease, a timer or an event
    for a token it waits on, or a stop request.
``unlisted-keys-checked`` (a warning)
    Finding a key that no index lists takes SCAN, which redstep's ACL user is refused; run as
    that user, the doctor reads what the indexes list and says it looked no further.
``callback-has-a-timeout`` (a warning: it does not fail the check)
    A ``.waitForTaskToken`` task waits legitimately, but with no TimeoutSeconds or
    HeartbeatSeconds only a SendTaskSuccess or SendTaskFailure will ever move it.

Reading 100,000 executions in one transaction would stall Redis, so the doctor reads in
bounded batches: each batch of executions (blob, version, history length, index entries) is
one MULTI, so what it says of one execution is exact. Between batches the stack moves on;
what looks wrong for that reason is read again before it is reported: an index entry that
looked orphaned is looked up again, and a RUNNING execution that looked stuck is reported
only if a second read of its blob, a second scan of everything that could move it and a
third read of its version still agree (a token answered during the scan moves the version on).
On a quiet stack the report is exact; on a busy one it never names an execution that moved.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from orchestrator.nested_executions import PARENT_TASK
from orchestrator.protocol.decoding import loads, lossless_text
from orchestrator.runtime import movers
from orchestrator.runtime.histories import MAGIC, MalformedHistory, compacted_length
from orchestrator.runtime.keys import FINISHED_STATUSES, STATUSES, Keys
from orchestrator.runtime.movers import add_waited_on_children, find_movers, glob_escape, json_object
from orchestrator.settings import Settings

ERROR, WARNING = "error", "warning"
SNAPSHOT_BATCH = 200


@dataclass(frozen=True)
class Problem:
    """One broken invariant: what it concerns (an execution's name or a key), which, and what to do."""

    subject: str
    invariant: str
    explanation: str
    severity: str = ERROR

    @property
    def fails(self) -> bool:
        """Whether it makes the check fail (a warning does not)."""
        return self.severity == ERROR

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


UNLISTED_KEYS_UNCHECKED = Problem(
    "SCAN",
    "unlisted-keys-checked",
    "this Redis user may not SCAN, so only executions an index lists were read: an execution or a "
    "history that no index lists was not looked for; run `redstep doctor` with a REDIS_URL naming "
    "a user allowed SCAN (the administrator) to look for those too",
    WARNING,
)


@dataclass
class Examination:
    """What a check read and what it found."""

    executions: int = 0
    running: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not any(problem.fails for problem in self.problems)


@dataclass
class Snapshot:
    """One execution as one MULTI read it."""

    name: str
    exists: bool
    execution: dict[str, Any] | None = None
    version: int | None = None
    unreadable: str | None = None
    history_length: int | None = None  # None: the history key is neither a list nor compacted
    history_compacted: bool = False  # a string: the compacted form of a finished execution's history
    history_malformed: str | None = None  # why a string at the history key is no compacted history
    history_exists: bool = False
    indexes: set[str] = field(default_factory=set)  # keys of the indexes that list it


def check(redis_client: redis.Redis, settings: Settings) -> list[Problem]:
    """Every broken invariant of the stored state; empty when all hold."""
    return examine(redis_client, settings).problems


def examine(redis_client: redis.Redis, settings: Settings) -> Examination:
    """Check every invariant (see the module's docstring); also count what was read."""
    doctor = Doctor(redis_client, Keys(settings.prefix))
    return doctor.examine()


class Doctor:
    """One check's reads of one installation."""

    def __init__(self, redis_client: redis.Redis, keys: Keys) -> None:
        self.redis = redis_client
        self.keys = keys
        self.indexes = [keys.executions, *(keys.status(s) for s in STATUSES), keys.closed]
        self.broken_indexes: set[str] = set()
        self.scan_refused = False

    def examine(self) -> Examination:
        found = Examination()
        found.problems += self.index_types()
        names = self.scan_names(self.keys.execution("*"))
        if names is None:
            names = sorted(self.indexed_names())
        existing: set[str] = set()
        running: dict[str, dict[str, Any]] = {}
        for snapshot in self.snapshots(names):
            if not snapshot.exists:
                continue  # an index entry naming nothing, or swept since: orphans() reads it again
            existing.add(snapshot.name)
            found.executions += 1
            found.problems += self.structure(snapshot)
            if snapshot.execution is not None and snapshot.execution["status"] == "RUNNING":
                running[snapshot.name] = slim(snapshot.execution)
        found.running = len(running)
        found.problems += self.orphans(existing)
        found.problems += self.stuck(running)
        if self.scan_refused:
            found.problems.append(UNLISTED_KEYS_UNCHECKED)
        return found

    # -- reading -----------------------------------------------------------------------------

    def scan_names(self, pattern_key: str) -> list[str] | None:
        """The execution names of the keys shaped like ``pattern_key`` (``*`` in the hash tag).

        None when this user may not SCAN (redstep's ACL user may not): then only what the
        indexes list is read, and the report says so.
        """
        head, _, tail = pattern_key.partition("{*}")
        pattern = f"{glob_escape(head)}{{*}}{glob_escape(tail)}"
        try:
            found = [lossless_text(key) for key in self.redis.scan_iter(match=pattern, count=1000)]
        except redis.exceptions.NoPermissionError:
            self.scan_refused = True
            return None
        return [key[len(head) + 1 : len(key) - len(tail) - 1] for key in found]

    def indexed_names(self) -> set[str]:
        """Every execution name some readable index lists."""
        names: set[str] = set()
        for index in self.indexes:
            if index not in self.broken_indexes:
                names |= {lossless_text(member) for member, _ in movers.zscan(self.redis, index)}
        return names

    def snapshots(self, names: Iterable[str]) -> Iterator[Snapshot]:
        """Each execution as read in a MULTI of up to SNAPSHOT_BATCH executions."""
        batch: list[str] = []
        for name in names:
            batch.append(name)
            if len(batch) == SNAPSHOT_BATCH:
                yield from self.read_batch(batch)
                batch = []
        if batch:
            yield from self.read_batch(batch)

    def read_batch(self, names: list[str]) -> list[Snapshot]:
        pipe = self.redis.pipeline(transaction=True)
        for name in names:
            pipe.exists(self.keys.execution(name))
            pipe.hmget(self.keys.execution(name), ["execution", "version"])
            pipe.exists(self.keys.history(name))
            pipe.llen(self.keys.history(name))
            # A compacted history is a string: its header counts its events (runtime.histories).
            pipe.getrange(self.keys.history(name), 0, len(MAGIC) + 20)
            for index in self.indexes:
                pipe.zscore(index, name)
        replies = pipe.execute(raise_on_error=False)
        width = 5 + len(self.indexes)
        return [snapshot_of(name, replies[i * width : (i + 1) * width], self) for i, name in enumerate(names)]

    # -- the invariants ----------------------------------------------------------------------

    def index_types(self) -> list[Problem]:
        problems = []
        for index in self.indexes:
            kind = lossless_text(self.redis.type(index))
            if kind not in ("zset", "none"):
                self.broken_indexes.add(index)
                problems.append(
                    Problem(
                        index,
                        "index-type",
                        f"holds a {kind}, not a sorted set: every commit that writes it is refused; "
                        f"rebuild it as a sorted set (DEL it, then re-add its executions)",
                    )
                )
        return problems

    def structure(self, snapshot: Snapshot) -> list[Problem]:
        """The invariants one snapshot breaks, all but what moves it."""
        name, keys = snapshot.name, self.keys
        listed = sorted(snapshot.indexes)
        if not snapshot.exists:
            problems = []
            if listed:
                problems.append(
                    Problem(
                        name,
                        "index-without-execution",
                        f"listed in {', '.join(listed)} but {keys.execution(name)} does not exist: "
                        "ZREM it from them (or restore the execution)",
                    )
                )
            if snapshot.history_exists:
                problems.append(
                    Problem(
                        name,
                        "history-without-execution",
                        f"{keys.history(name)} exists but {keys.execution(name)} does not: "
                        "delete the history (or restore the execution)",
                    )
                )
            return problems
        if snapshot.unreadable is not None or snapshot.execution is None:
            return [Problem(name, "readable-execution", f"{keys.execution(name)} {snapshot.unreadable}")]
        return self.indexed(snapshot) + history_problems(snapshot, keys)

    def indexed(self, snapshot: Snapshot) -> list[Problem]:
        assert snapshot.execution is not None
        name, status, keys = snapshot.name, snapshot.execution["status"], self.keys
        expected = {keys.executions, keys.status(status)}
        if status in FINISHED_STATUSES:
            expected.add(keys.closed)
        problems = []
        for index in sorted(expected - snapshot.indexes - self.broken_indexes):
            invariant = {keys.executions: "execution-index", keys.closed: "closed-index"}.get(
                index, "status-index"
            )
            why = {
                keys.executions: "ListExecutions will not show it",
                keys.closed: "retention will never remove it",
            }.get(index, f"listing {status} executions will not show it")
            problems.append(Problem(name, invariant, f"{status} but missing from {index}: {why}; ZADD it"))
        for index in sorted(snapshot.indexes - expected - self.broken_indexes):
            invariant = "closed-index" if index == keys.closed else "status-index"
            why = "the retention sweep skips it" if index == keys.closed else "it is counted twice"
            problems.append(Problem(name, invariant, f"{status} but also listed in {index}: {why}; ZREM it"))
        return problems

    def orphans(self, names: set[str]) -> list[Problem]:
        """Index entries and histories naming no execution, each looked up again before it is reported."""
        suspects = self.indexed_names() - names
        suspects |= set(self.scan_names(self.keys.history("*")) or ()) - names
        problems = []
        for snapshot in self.snapshots(sorted(suspects)):
            problems += self.structure(snapshot)
        return problems

    def stuck(self, running: dict[str, dict[str, Any]]) -> list[Problem]:
        """RUNNING executions that nothing will move, confirmed by a second read (see the docstring)."""
        first = find_movers(self.redis, self.keys, set(running))
        add_waited_on_children(first, set(running), running)
        suspects = [name for name, execution in running.items() if not movers.waiting(execution, first).moves]
        if not suspects:
            return []
        again = {
            s.name: (slim(s.execution), s.version)
            for s in self.snapshots(suspects)
            if s.execution is not None and s.execution["status"] == "RUNNING"
        }
        second = find_movers(self.redis, self.keys, set(again))
        add_waited_on_children(second, set(again), running)
        versions = self.versions(list(again))
        aside = moved_aside_by_execution(self.redis, self.keys, set(again))
        problems = []
        for name, (execution, version) in again.items():
            if versions.get(name) != version:
                continue  # it moved on while it was being looked at
            problems += waiting_problems(name, movers.waiting(execution, second), aside.get(name, []))
        return problems

    def versions(self, names: list[str]) -> dict[str, int | None]:
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.hget(self.keys.execution(name), "version")
        return {name: integer(v) for name, v in zip(names, pipe.execute(raise_on_error=False), strict=True)}


def snapshot_of(name: str, replies: list[Any], doctor: Doctor) -> Snapshot:
    """A :class:`Snapshot` from one execution's replies in :meth:`Doctor.read_batch`."""
    exists, fields, history_exists, history_length, header, *scores = replies
    snapshot = Snapshot(name, exists == 1, history_exists=history_exists == 1)
    snapshot.history_length = history_length if isinstance(history_length, int) else None
    if snapshot.history_length is None and isinstance(header, bytes):
        try:
            snapshot.history_length = compacted_length(doctor.keys.history(name), header)
            snapshot.history_compacted = True
        except MalformedHistory as malformed:
            snapshot.history_malformed = str(malformed)
    snapshot.indexes = {index for index, score in zip(doctor.indexes, scores, strict=True) if is_score(score)}
    if snapshot.exists:
        snapshot.execution, snapshot.version, snapshot.unreadable = read_execution(name, fields)
    return snapshot


def read_execution(name: str, fields: Any) -> tuple[dict[str, Any] | None, int | None, str | None]:
    """The execution blob and version from an HMGET reply, or why they cannot be read."""
    if isinstance(fields, Exception):
        return None, None, f"is not a hash ({fields}): delete it or restore the execution"
    blob, raw_version = fields
    version = integer(raw_version)
    if blob is None:
        return None, version, "has no 'execution' field: restore the execution or delete the key"
    try:
        execution = loads(blob)
    except ValueError as error:
        return None, version, f"holds an 'execution' field that is not JSON ({error}): restore or delete it"
    problem = blob_problem(name, execution)
    if problem is None and version is None:
        problem = f"has a 'version' field that is not an integer ({raw_version!r}): set it to an integer"
    if problem is not None:
        return None, version, problem
    return execution, version, None


def blob_problem(name: str, execution: Any) -> str | None:
    if not isinstance(execution, dict):
        return "holds an 'execution' that is not a JSON object: restore or delete it"
    if execution.get("name") != name:
        return f"holds the execution named {execution.get('name')!r}, not {name!r}: restore or delete it"
    if execution.get("status") not in STATUSES:
        return f"has status {execution.get('status')!r}, not one of {', '.join(STATUSES)}"
    if not isinstance(execution.get("lastEventId"), int):
        return f"has a lastEventId that is not an integer ({execution.get('lastEventId')!r})"
    if execution["status"] == "RUNNING" and not isinstance(execution.get("tokens", {}), dict):
        return "is RUNNING with a 'tokens' that is not a JSON object"
    return None


def history_problems(snapshot: Snapshot, keys: Keys) -> list[Problem]:
    assert snapshot.execution is not None
    name, expected = snapshot.name, snapshot.execution["lastEventId"]
    if snapshot.history_malformed is not None:
        return [Problem(name, "history-length", snapshot.history_malformed)]
    if snapshot.history_length is None:
        why = (
            f"{keys.history(name)} is not a list: every commit of this execution is refused; restore the list"
        )
        return [Problem(name, "history-length", why)]
    if snapshot.history_compacted and snapshot.execution["status"] not in FINISHED_STATUSES:
        why = (
            f"{keys.history(name)} is compacted, but the execution is {snapshot.execution['status']}: every "
            "commit of this execution is refused; restore the history as a list of events"
        )
        return [Problem(name, "history-length", why)]
    if snapshot.history_length != expected:
        why = (
            f"its history holds {snapshot.history_length} event(s) but its lastEventId is {expected}: "
            "events were lost (or written outside a commit); restore the history from a backup"
        )
        return [Problem(name, "history-length", why)]
    return []


def waiting_problems(name: str, verdict: movers.Waiting, aside: list[str]) -> list[Problem]:
    """The problems of a running execution nothing (or only a callback) will move."""
    problems = []
    if verdict.stuck:
        if aside:
            how = (
                f"{len(aside)} of its events were moved aside (`redstep events list`): fix their "
                f"cause, then `redstep events replay {' '.join(aside)}`; or end it with "
                f"`redstep executions stop {name}`"
            )
        else:
            how = f"end it with `redstep executions stop {name}` (or redrive it once stopped)"
        waits = "; ".join(verdict.stuck)
        explanation = (
            f"RUNNING, and nothing will move it: {waits} has no queued job, lease, timer or event; {how}"
        )
        problems.append(Problem(name, "something-moves-it", explanation))
    for described in verdict.callbacks:
        explanation = (
            f"waits for a callback in {described} with no TimeoutSeconds or HeartbeatSeconds: only "
            "SendTaskSuccess or SendTaskFailure will move it (a warning: it does not fail the check)"
        )
        problems.append(Problem(name, "callback-has-a-timeout", explanation, WARNING))
    return problems


def moved_aside_by_execution(redis_client: redis.Redis, keys: Keys, names: set[str]) -> dict[str, list[str]]:
    """The ids of the moved-aside events (on ``{p}:malformed``) of each of ``names``."""
    found: dict[str, list[str]] = {}
    start = "-"
    while True:
        try:
            chunk = redis_client.xrange(keys.malformed, min=start, count=movers.BATCH)
        except redis.ResponseError:
            return found
        for entry_id, fields in chunk:
            original = json_object(fields.get(b"fields", b""))
            event = json_object(original.get("event", ""))
            if event.get("execution") in names and lossless_text(fields.get(b"stream", b"")) == keys.events:
                found.setdefault(event["execution"], []).append(lossless_text(entry_id))
        if len(chunk) < movers.BATCH:
            return found
        start = "(" + lossless_text(chunk[-1][0])


def slim(execution: dict[str, Any] | None) -> dict[str, Any]:
    """What :func:`movers.waiting` needs of an execution, so a big run's blobs are not all kept."""
    assert execution is not None
    threads = execution.get("threads")
    states = {
        thread_id: {"state": thread.get("state")}
        for thread_id, thread in (threads.items() if isinstance(threads, dict) else [])
        if isinstance(thread, dict)
    }
    slimmed = {"name": execution["name"], "tokens": execution.get("tokens") or {}, "threads": states}
    if PARENT_TASK in execution:
        slimmed[PARENT_TASK] = execution[PARENT_TASK]
    return slimmed


def integer(raw: Any) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def is_score(reply: Any) -> bool:
    return reply is not None and not isinstance(reply, Exception)


__all__ = ["ERROR", "WARNING", "Examination", "Problem", "check", "examine"]
