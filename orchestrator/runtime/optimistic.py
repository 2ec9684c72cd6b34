"""Optimistic commits: read, decide, write only if nothing moved meanwhile, else try again.

Every writer that may race another one (orchestrators advancing executions, a client starting
or redriving one, a person replaying an event or redriving a dead letter) commits this way:
a version-checked ``commit.lua`` call, or a ``WATCH``/``MULTI`` transaction. The attempt
function does one read-decide-write round and either returns its result or :class:`Lost`,
naming what conflicted; :func:`commit_optimistically` runs it again until it commits or the
one :data:`COMMIT_RETRIES` policy says stop, and then raises :class:`CommitConflict`, which
says what kept conflicting.

Retrying at once, without a pause, is deliberate: a lost race means another writer has just
moved on, so the next read sees its work, and the contenders are a handful of processes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from orchestrator.runtime.store import COMMIT_ATTEMPTS, Conflict

T = TypeVar("T")

WATCHED = "watched"  # the kind of a Conflict on a WATCHed key that changed before EXEC


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many races a commit may lose in a row before it gives up."""

    attempts: int

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"a retry policy needs at least one attempt, not {self.attempts}")


COMMIT_RETRIES = RetryPolicy(attempts=COMMIT_ATTEMPTS)


@dataclass(frozen=True, slots=True)
class Lost:
    """An attempt's answer when another writer moved first: what conflicted (never empty)."""

    conflicts: list[Conflict]


@dataclass(slots=True)
class Attempt:
    """What an attempt function is told: which attempt it is, and every conflict lost so far.

    A retry usually reads afresh (what it remembered may be what lost the race) and drops
    the stream entries another writer acknowledged meanwhile (see ``store.acked_elsewhere``).
    """

    number: int = 0
    conflicts: list[Conflict] = field(default_factory=list)

    @property
    def retry(self) -> bool:
        """Whether an earlier attempt lost a race."""
        return self.number > 0


class CommitConflict(RuntimeError):
    """A commit lost every race the policy allows; nothing of it was written.

    Attributes:
        what: the commit, in a few words ("the start of execution x").
        conflicts: every conflict, in the order they were lost.
    """

    def __init__(self, what: str, attempts: int, conflicts: list[Conflict]) -> None:
        self.what = what
        self.conflicts = conflicts
        super().__init__(
            f"{what} lost {attempts} race(s) in a row to other writers and was given up, nothing "
            f"written; what conflicted: {describe(conflicts)}"
        )


def commit_optimistically(
    what: str, attempt: Callable[[Attempt], T | Lost], policy: RetryPolicy = COMMIT_RETRIES
) -> T:
    """Run ``attempt`` until it returns something other than :class:`Lost`, and return that.

    Raises:
        CommitConflict: ``attempt`` lost ``policy.attempts`` races in a row.
    """
    state = Attempt()
    for number in range(policy.attempts):
        state.number = number
        outcome = attempt(state)
        if not isinstance(outcome, Lost):
            return outcome
        if not outcome.conflicts:
            raise ValueError(f"{what}: an attempt reported a lost race without saying what conflicted")
        state.conflicts.extend(outcome.conflicts)
    raise CommitConflict(what, policy.attempts, state.conflicts)


def watched_key_changed(key: str) -> Lost:
    """The loss of a ``WATCH``/``MULTI`` transaction: ``key`` changed before ``EXEC``."""
    return Lost([Conflict(WATCHED, key)])


def describe(conflicts: list[Conflict]) -> str:
    """The distinct conflicts, most frequent first: ``version of <key> (x3), entry 1-0 of <stream> acked``."""
    counted = Counter(_one(conflict) for conflict in conflicts)
    return ", ".join(text if count == 1 else f"{text} (x{count})" for text, count in counted.most_common())


def _one(conflict: Conflict) -> str:
    if conflict.kind == "version":
        return f"the version of {conflict.key} changed"
    if conflict.kind == "acked":
        return f"entry {conflict.entry_id} of {conflict.key} was acknowledged by another"
    if conflict.kind == WATCHED:
        return f"{conflict.key} changed while watched"
    return f"{conflict.kind} {conflict.key}"
