"""Compacting finished executions' histories: a list of events becomes one compressed string.

A finished execution keeps its history for its retention (90 days by default), and the list
of JSON events is most of what it keeps: 8.5 of the ~10.8 KB of a DragonPipeline execution.
No commit appends to a finished execution's history, unless a redrive runs it again, so once
``history_compact_after_seconds`` have passed since it stopped, an orchestrator replaces the
list by its compacted form (runtime.histories), about a sixth of its memory.

Each orchestrator walks ``{p}:closed`` (finished executions by stop time) from where its last
pass stopped: it reads a batch of histories in one round trip, compresses them, and replaces
them in one script call (lua/compact_histories.lua), which leaves alone any history that
changed meanwhile or whose execution was redriven. Orchestrators that walk the same entries
find them compacted already and skip them.

A history of more than MOST_EVENTS events stays a list: the API and the dashboard read such a
history a page at a time, and a page of a list costs what the page holds, where a page of the
compacted form would cost unpacking all of it. Most histories are far shorter (a dragon's has
19 events), and they hold most of the memory.

A pass costs the loop about 150 us per history (on a slow 2-vCPU machine), time an event
waiting behind it would wait too. So a loop makes one pass of ``batch`` every
COMPACT_EVERY_SECONDS, and while that pass found more due than it took, more passes of up to
IDLE_BATCH whenever it is idle (its last wait for work found none). A backlog is worked off in
the gaps between work, and the histories of a load that leaves no gaps are compacted too, later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis

from orchestrator.runtime.clock import RedisClock
from orchestrator.runtime.histories import pack
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.scripts import lua_script
from orchestrator.settings import Settings

log = logging.getLogger(__name__)

COMPACT_BATCH = 10
IDLE_BATCH = 50
COMPACT_EVERY_SECONDS = 1.0
MOST_BYTES_PER_CALL = 4 * 1024 * 1024  # compacted strings per script call, at most (roughly)
MOST_EVENTS = 1000  # GetExecutionHistory's largest page


class HistoryCompaction:
    """Compacts the histories of executions that finished long enough ago, a batch per pass.

    Args:
        redis_client: the connection.
        settings: the prefix and ``history_compact_after_seconds`` (negative: never compact).
        clock: the time source the stop times were taken from; Redis's ``TIME`` by default.
        batch: the most executions a pass of a busy loop looks at (an idle one's: IDLE_BATCH).
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        settings: Settings,
        clock: Callable[[], float] | None = None,
        batch: int = COMPACT_BATCH,
    ) -> None:
        self.redis = redis_client
        self.keys = Keys(settings.prefix)
        self.after_seconds = settings.history_compact_after_seconds
        self.clock = clock or RedisClock(redis_client)
        self.batch = batch
        self._script = lua_script(redis_client, "compact_histories")
        self._next_pass = float("-inf")
        self._behind = False  # the last pass found more due than it took
        self._cursor: tuple[str, float] | None = None  # the last entry of closed a pass looked at

    def compact_if_due(self, idle: bool = False) -> int:
        """Make a pass when the loop is ``idle`` or one is due; returns how many histories it compacted.

        Compacting only saves memory, so a pass Redis refuses is logged and tried again later:
        it must never stop the orchestrator from running executions.
        """
        if self.after_seconds < 0:
            return 0
        now = self.clock()
        if not (idle and self._behind) and now < self._next_pass:
            return 0
        self._next_pass = now + COMPACT_EVERY_SECONDS
        try:
            compacted, self._behind = self.compact(now, IDLE_BATCH if idle else self.batch)
        except (redis.ResponseError, ValueError):
            log.exception("compacting finished histories failed; they stay lists until the next pass")
            self._behind = False
            return 0
        return compacted

    def compact(self, now: float, batch: int | None = None) -> tuple[int, bool]:
        """Compact the histories of up to ``batch`` executions that stopped before the cutoff.

        Returns how many were compacted, and whether the batch was full (more may be due).
        """
        batch = batch or self.batch
        entries = self.next_entries(now - self.after_seconds, batch)
        if not entries:
            return 0, False
        self._cursor = entries[-1]
        names = [name for name, _ in entries]
        keys = [self.keys.history(name) for name in names]
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.lrange(key, 0, MOST_EVENTS)  # one more than MOST_EVENTS says it is longer
        replies = pipe.execute(raise_on_error=False)
        compacted, chosen, size = 0, [], 0
        for name, events in zip(names, replies, strict=True):
            if isinstance(events, Exception) or not events:
                continue  # compacted already (WRONGTYPE), gone, or another type (the doctor says so)
            if len(events) > MOST_EVENTS:
                continue  # read a page at a time: it stays a list
            blob = pack(events)
            chosen.append((name, len(events), blob))
            size += len(blob)
            if size >= MOST_BYTES_PER_CALL:
                compacted += self.replace(chosen)
                chosen, size = [], 0
        if chosen:
            compacted += self.replace(chosen)
        return compacted, len(entries) >= batch

    def next_entries(self, cutoff: float, batch: int) -> list[tuple[str, float]]:
        """The next entries of closed after the cursor that stopped at or before ``cutoff``."""
        closed = self.keys.closed
        rank = None if self._cursor is None else self.redis.zrank(closed, self._cursor[0])
        if rank is not None:
            rows = self.redis.zrange(closed, rank + 1, rank + batch, withscores=True)
        else:
            # The last entry looked at is gone (retention removed it): go on from its score,
            # which looks again only at entries that share it.
            low = "-inf" if self._cursor is None else repr(self._cursor[1])
            rows = self.redis.zrangebyscore(closed, low, repr(cutoff), start=0, num=batch, withscores=True)
        entries = []
        for member, score in rows:
            if score > cutoff:
                break
            entries.append((member.decode() if isinstance(member, bytes) else member, float(score)))
        return entries

    def replace(self, chosen: list[tuple[str, int, bytes]]) -> int:
        keys = [self.keys.closed, *(self.keys.history(name) for name, _, _ in chosen)]
        args: list[str | int | bytes] = [name for name, _, _ in chosen]
        args += [count for _, count, _ in chosen]
        args += [blob for _, _, blob in chosen]
        return int(self._script(keys=keys, args=args))
