"""Retention: finished executions are removed once they have been stopped longer than the retention.

As on AWS Step Functions, where a closed execution leaves ListExecutions, DescribeExecution
and GetExecutionHistory 90 days after it stops. The commit that finishes an execution
records it in the closed index (``{p}:closed``) by its stop time; each orchestrator sweeps
that index now and then with ``lua/sweep_closed.lua``, which removes a batch of executions
whole (blob, history, index entries) in one call, so none is ever half removed.

A state machine may have its own retention (``{p}:machine-retention``, set by ``redstep
machines retention``); the others keep ``retention_seconds``. A sweep reads those overrides
once and makes one script call per distinct retention, each going on from where the last
one for that retention stopped, so a short retention is honoured behind any number of
executions kept longer, and no entry is looked at twice for one retention.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import redis

from orchestrator.runtime.clock import RedisClock
from orchestrator.runtime.keys import FINISHED_STATUSES, Keys
from orchestrator.runtime.machines import machine_retentions
from orchestrator.runtime.scripts import lua_script
from orchestrator.settings import Settings

log = logging.getLogger(__name__)

SWEEP_BATCH = 500
START = ("-inf", b"")  # a cursor before every entry of the closed index


@dataclass(frozen=True)
class RetentionGroup:
    """The machines that share one retention: every machine but ``machines``, or only them."""

    seconds: float
    only: bool
    machines: tuple[str, ...]


def retention_groups(default_seconds: float, overrides: dict[str, float]) -> list[RetentionGroup]:
    """One group per distinct retention that removes anything (0 keeps forever: no group)."""
    differing = sorted(name for name, seconds in overrides.items() if seconds != default_seconds)
    groups = [RetentionGroup(default_seconds, False, tuple(differing))] if default_seconds else []
    for seconds in sorted({overrides[name] for name in differing} - {0.0}):
        machines = tuple(name for name in differing if overrides[name] == seconds)
        groups.append(RetentionGroup(seconds, True, machines))
    return groups


class Retention:
    """Sweeps executions past their retention, at most once per sweep interval.

    Args:
        redis_client: the connection.
        settings: the prefix, ``retention_seconds`` (the default; 0: keep forever) and
            ``retention_sweep_interval_seconds``.
        clock: the time source (epoch seconds), the one stop times were taken from; Redis's
            ``TIME`` by default (see runtime.clock).
        batch: the most entries of the closed index one script call looks at (so also removes),
            which bounds how long it runs; a sweep makes one call per distinct retention.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        settings: Settings,
        clock: Callable[[], float] | None = None,
        batch: int = SWEEP_BATCH,
    ) -> None:
        self.redis = redis_client
        self.keys = Keys(settings.prefix)
        self.retention_seconds = settings.retention_seconds
        self.interval_seconds = settings.retention_sweep_interval_seconds
        self.clock = clock or RedisClock(redis_client)
        self.batch = batch
        self._script = lua_script(redis_client, "sweep_closed")
        self._next_sweep = float("-inf")
        self._overrides: dict[str, float] | None = None
        self._cursors: dict[RetentionGroup, tuple[str, bytes]] = {}
        # Whether the last sweep stopped at a full batch for some retention: more may be due.
        self.more_waiting = False

    def sweep_if_due(self) -> int:
        """Sweep when the interval has passed; returns how many were removed.

        The overrides are read even when the default keeps forever, as a machine may have its
        own retention. A full batch means more are waiting (a backlog, or executions finishing faster than
        one batch per interval), so the next call sweeps again instead of waiting. A sweep that
        Redis refuses is logged and tried again an interval later: keeping executions too
        long must never stop the orchestrator from running them.
        """
        now = self.clock()
        if now < self._next_sweep:
            return 0
        self._next_sweep = now + self.interval_seconds
        try:
            removed = self.sweep(now)
        except redis.ResponseError:
            log.exception("the retention sweep failed; finished executions are kept until the next one")
            return 0
        if self.more_waiting:
            self._next_sweep = now
        return removed

    def sweep(self, now: float) -> int:
        """Remove executions that stopped longer ago than their machine's retention, up to
        ``batch`` per distinct retention; returns how many were removed."""
        overrides = machine_retentions(self.redis, self.keys)
        if overrides != self._overrides:
            # A machine that moved between retentions may have entries behind its new group's cursor.
            self._overrides, self._cursors = overrides, {}
        self.more_waiting = False
        removed = 0
        for group in retention_groups(self.retention_seconds, overrides):
            removed += self._sweep_group(group, now - group.seconds)
        return removed

    def _sweep_group(self, group: RetentionGroup, cutoff: float) -> int:
        keys = [self.keys.closed, self.keys.executions, self.keys.status("RUNNING")]
        keys += [self.keys.status(status) for status in FINISHED_STATUSES]
        score, member = self._cursors.get(group, START)
        mode = "only" if group.only else "except"
        args = [repr(cutoff), self.batch, self.keys.prefix, score, member, mode, *group.machines]
        removed, looked_at, score, member = self._script(keys=keys, args=args)
        self._cursors[group] = (score.decode() if isinstance(score, bytes) else score, member)
        self.more_waiting |= int(looked_at) >= self.batch
        if removed:
            log.info("removed %d execution(s) that stopped over %gs ago", removed, group.seconds)
        return int(removed)
