"""Retention: finished executions are removed once they have been stopped longer than the retention.

As on AWS Step Functions, where a closed execution leaves ListExecutions, DescribeExecution
and GetExecutionHistory 90 days after it stops. The commit that finishes an execution
records it in the closed index (``{p}:closed``) by its stop time; each orchestrator sweeps
that index now and then with ``lua/sweep_closed.lua``, which removes a batch of executions
whole (blob, history, index entries) in one call, so none is ever half removed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis

from orchestrator.runtime.keys import FINISHED_STATUSES, Keys
from orchestrator.runtime.scripts import lua_script
from orchestrator.settings import Settings

log = logging.getLogger(__name__)

SWEEP_BATCH = 500


class Retention:
    """Sweeps executions past their retention, at most once per sweep interval.

    Args:
        redis_client: the connection.
        settings: the prefix, ``retention_seconds`` (0: keep forever, never sweep) and
            ``retention_sweep_interval_seconds``.
        clock: the time source (epoch seconds), the one stop times were taken from.
        batch: the most executions one sweep removes, which bounds how long its script runs.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        batch: int = SWEEP_BATCH,
    ) -> None:
        self.keys = Keys(settings.prefix)
        self.retention_seconds = settings.retention_seconds
        self.interval_seconds = settings.retention_sweep_interval_seconds
        self.clock = clock
        self.batch = batch
        self._script = lua_script(redis_client, "sweep_closed")
        self._next_sweep = float("-inf")

    def sweep_if_due(self) -> int:
        """Sweep when retention is on and the interval has passed; returns how many were removed.

        A full batch means more are waiting (a backlog, or executions finishing faster than
        one batch per interval), so the next call sweeps again instead of waiting. A sweep that
        Redis refuses is logged and tried again an interval later: keeping executions too
        long must never stop the orchestrator from running them.
        """
        if not self.retention_seconds:
            return 0
        now = self.clock()
        if now < self._next_sweep:
            return 0
        self._next_sweep = now + self.interval_seconds
        try:
            removed = self.sweep(now)
        except redis.ResponseError:
            log.exception("the retention sweep failed; finished executions are kept until the next one")
            return 0
        if removed >= self.batch:
            self._next_sweep = now
        return removed

    def sweep(self, now: float) -> int:
        """Remove up to ``batch`` executions that stopped before ``now`` - retention."""
        cutoff = now - self.retention_seconds
        keys = [self.keys.closed, self.keys.executions, self.keys.status("RUNNING")]
        keys += [self.keys.status(status) for status in FINISHED_STATUSES]
        removed = int(self._script(keys=keys, args=[repr(cutoff), self.batch, self.keys.prefix]))
        if removed:
            log.info("removed %d execution(s) that stopped over %gs ago", removed, self.retention_seconds)
        return removed
