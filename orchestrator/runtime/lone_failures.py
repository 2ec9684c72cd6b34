"""Executions whose commit Redis refuses, failed alone so that the rest of their batch lands.

A batch of transitions commits in one script call, which writes all of it or none of it.
When Redis refuses the call with an error (not a lost race: a key that holds another type
of value, a write Redis would refuse), the orchestrator splits the batch in halves until
each execution at fault stands alone, commits everything else, and ends each one at fault
FAILED with ``States.Runtime`` and the error as its cause, in a commit of its own that also
acknowledges its events. So nothing is left RUNNING with nothing to move it on, and no event
is acknowledged without a trace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import redis

from orchestrator.asl import errors
from orchestrator.protocol.reconnect import REFUSAL_ERRORS
from orchestrator.runtime import transitions
from orchestrator.runtime.clock import RedisClock
from orchestrator.runtime.optimistic import Attempt, CommitConflict, Lost, commit_optimistically
from orchestrator.runtime.store import (
    Commit,
    CommitRefused,
    Conflict,
    Store,
    acked_elsewhere,
)
from orchestrator.settings import Settings

log = logging.getLogger(__name__)

# Redis refusing for its own state (full memory, a replica, a busy script, a failover), which
# says nothing about the batch: it stays pending and is tried again, nobody is failed for it.
SERVER_STATE_ERRORS = (*REFUSAL_ERRORS, redis.exceptions.TryAgainError, redis.exceptions.NoScriptError)

Item = TypeVar("Item")


def is_server_state(error: Exception) -> bool:
    """Whether Redis refused for its own state rather than for what the batch holds."""
    return isinstance(error, SERVER_STATE_ERRORS) or str(error).startswith(("BUSY", "LOADING"))


def blames_shared_keys(error: Exception, name: str) -> bool:
    """Whether Redis refused ``name``'s commit for a key it shares with other executions.

    A shared key of the wrong type (an index, the event stream, the task queue) is the
    installation's fault, not the execution's: failing it would fail every execution that
    touches the key. Its work waits instead, moved aside or pending, until the key is fixed.
    """
    own = f"{{{name}}}"  # the hash tag every key of one execution carries
    return isinstance(error, CommitRefused) and any(own not in key for key in error.keys)


def halves(items: Sequence[Item]) -> tuple[Sequence[Item], Sequence[Item]]:
    """``items`` split in two, so that a refused batch finds its culprits in log2(n) rounds."""
    middle = len(items) // 2
    return items[:middle], items[middle:]


class LoneFailures:
    """Commits an execution's end (or its failed start) when its own transition cannot land.

    Args:
        store: loads executions and applies commits.
        settings: what :func:`transitions.record` needs (the notification log's length).
        commit: applies a commit; the orchestrator passes its own, with its fault points.
        clock: the time source (epoch seconds); Redis's ``TIME`` by default (see runtime.clock).
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        commit: Callable[[Commit], list[Conflict]] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.commit = commit or store.commit
        self.clock = clock or RedisClock(store.redis)

    def fail_running(self, name: str, stream: str, entry_ids: list[str], cause: str) -> bool:
        """End running execution ``name`` FAILED with ``cause``, acknowledging ``entry_ids``.

        Returns:
            False when there is no running execution of that name to fail (nothing written).
        """

        def fail(execution: dict[str, Any] | None, now: float) -> transitions.Transition | None:
            if execution is None or execution["status"] != "RUNNING":
                return None
            machine = execution["stateMachine"]
            return transitions.fail(name, machine, None, errors.RUNTIME, cause, now, execution)

        return self._commit_alone(name, stream, entry_ids, fail, only_if_new=False)

    def fail_start(
        self, name: str, machine_name: str, input: Any, stream: str | None, entry_ids: list[str], cause: str
    ) -> None:
        """Start execution ``name`` FAILED with ``cause``, acknowledging ``entry_ids`` of ``stream``.

        An execution of that name that exists meanwhile is left as it is; the entries are
        acknowledged all the same, as a repeated message's are.
        """

        def fail(execution: dict[str, Any] | None, now: float) -> transitions.Transition | None:
            if execution is not None:
                return None
            error = errors.RUNTIME
            return transitions.fail(name, machine_name, input, error, cause, now)

        self._commit_alone(name, stream or "", entry_ids, fail, only_if_new=True)

    def _commit_alone(
        self,
        name: str,
        stream: str,
        entry_ids: list[str],
        fail: Callable[[dict[str, Any] | None, float], transitions.Transition | None],
        only_if_new: bool,
    ) -> bool:
        pending = list(entry_ids)
        with_history = True

        def attempt(_: Attempt) -> bool | Lost:
            nonlocal pending, with_history
            execution, version = self.store.load([name])[name]
            transition = fail(execution, self.clock())
            if transition is None and not only_if_new:
                return False
            while True:
                commit = self._failure_commit(name, stream, pending, transition, version, with_history)
                if commit.empty:
                    return True
                try:
                    conflicts = self.commit(commit)
                    break
                except CommitRefused as refused:
                    if not with_history or self.store.keys.history(name) not in refused.keys:
                        raise
                    # Its history key holds something else: the blob and the indexes still say why.
                    log.error("execution %s: its history cannot be written (%s)", name, refused)
                    with_history = False
            if not conflicts:
                return True
            pending = [entry_id for entry_id in pending if not acked_elsewhere(conflicts, entry_id)]
            if entry_ids and not pending:
                return True  # another orchestrator applied them: nothing is left to fail for
            return Lost(conflicts)

        try:
            return commit_optimistically(f"the failure of execution {name}", attempt)
        except CommitConflict as gave_up:
            log.warning("%s; its events stay pending", gave_up)
            return True

    def _failure_commit(
        self,
        name: str,
        stream: str,
        entry_ids: list[str],
        transition: transitions.Transition | None,
        version: int,
        with_history: bool,
    ) -> Commit:
        commit = self.store.new_commit()
        for entry_id in entry_ids:
            commit.expect_pending(stream, entry_id)
            commit.ack(stream, entry_id)
        if transition is not None:
            if not with_history:
                transition.history = []
            commit.expect_version(name, version)
            transitions.record(commit, transition, version, self.settings)
        return commit
