"""Computing one batch while Redis applies the one before: an iteration's commits in turns.

An orchestrator under load spent about a third of its time waiting for its own commits: it
computed a batch, sent the commit, waited while Redis ran it, then computed the next. An
iteration now sends each commit without waiting (:meth:`Store.send`) and computes its next
part meanwhile: the starts' commit flies while the events are computed, and the events'
commit in parts of whole executions, each flying while the next is computed.

Nothing that depends on a commit runs before its outcome is read. The parts of one iteration
touch different executions (events are split by execution; a start names a new one), an
execution's remembered state (``KnownExecutions``) is updated only once its commit landed, and
the last commit of an iteration is read before the iteration ends, so the next read sees it.
A commit that lost a race or met an error is done again the synchronous way, from the start,
with its retries and its split into halves: nothing of it was written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from orchestrator.runtime.intake import Event
from orchestrator.runtime.store import Commit, SentCommit

# Executions per part when an iteration's events are committed in turns. A part's commit costs
# Redis about 30 us per execution, a fixed ~70 us and a round trip; parts of this size keep the
# fixed part small while leaving the next part's computation long enough to hide a commit.
TURN_EXECUTIONS = 100


@dataclass
class Computed:
    """A batch's transitions, written into a commit, and what to do once that commit landed.

    Attributes:
        commit: the writes and their preconditions.
        landed: run once the commit landed: remembers the executions, returns how many
            messages or events the batch consumed.
        names: the executions the commit writes.
    """

    commit: Commit
    landed: Callable[[], int]
    names: set[str]


@dataclass
class InFlight:
    """A computed batch whose commit was sent and whose outcome is not read yet.

    Attributes:
        sent: the commit on its way; None when computing the batch raised, so nothing was sent.
        computed: the batch it carries (None with ``sent``).
        again: the batch done the synchronous way, from the start (after a lost race or an
            error); returns what the batch consumed.
    """

    sent: SentCommit | None
    computed: Computed | None
    again: Callable[[], int]

    @property
    def names(self) -> set[str]:
        """The executions its commit writes."""
        return self.computed.names if self.computed is not None else set()

    def abandon(self) -> None:
        """Drop the reply unread (the iteration is failing anyway); its connection is closed."""
        if self.sent is not None:
            self.sent.abandon()


def group_by_execution(events: list[Event]) -> dict[str, list[Event]]:
    """``events`` by the execution each names, executions and events in the order they came."""
    grouped: dict[str, list[Event]] = {}
    for entry_id, event in events:
        grouped.setdefault(event["execution"], []).append((entry_id, event))
    return grouped


def turns(events: list[Event]) -> Iterator[list[Event]]:
    """``events`` in parts of at most TURN_EXECUTIONS whole executions, in the order they came."""
    groups = list(group_by_execution(events).values())
    for first in range(0, len(groups), TURN_EXECUTIONS):
        yield [event for group in groups[first : first + TURN_EXECUTIONS] for event in group]
