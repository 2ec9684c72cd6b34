"""One clock for every process: Redis's ``TIME``, carried forward between readings by a monotonic clock.

Timers, leases, visibility deadlines and retention compare due times written by one process
with "now" read by another. Judged by each machine's own clock, a machine 60 s ahead ends a
10 s Wait after a fraction of it, and one 91 days ahead deletes every finished execution.
So every process reads the time of the one server they all share: ``TIME`` once every
``refresh_seconds``, and in between the reading plus the monotonic time elapsed since, which
no change to the local wall clock can move. A round trip a second is all it costs. (Task
leases need no such clock: the scripts that set, renew and fire them read ``TIME`` themselves.)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis

from orchestrator.protocol.reconnect import OUTAGE_ERRORS

log = logging.getLogger(__name__)

REFRESH_SECONDS = 1.0


class RedisClock:
    """Epoch seconds by Redis's clock, as a callable (the ``clock`` every runtime part takes).

    Args:
        connection: the Redis whose ``TIME`` is the truth.
        refresh_seconds: how often ``TIME`` is read again; between readings the monotonic
            clock carries the last one forward.
        monotonic: the monotonic time source; tests pass their own.
    """

    def __init__(
        self,
        connection: redis.Redis,
        refresh_seconds: float = REFRESH_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connection = connection
        self.refresh_seconds = refresh_seconds
        self.monotonic = monotonic
        self._server_at_reading: float | None = None
        self._monotonic_at_reading = 0.0
        self._next_refresh = float("-inf")

    def __call__(self) -> float:
        if self._server_at_reading is None or self.monotonic() >= self._next_refresh:
            self.refresh()
        assert self._server_at_reading is not None
        return self._server_at_reading + (self.monotonic() - self._monotonic_at_reading)

    def refresh(self) -> None:
        """Read ``TIME`` again; while Redis is away, the last reading goes on being carried forward.

        Raises:
            redis.ConnectionError, redis.TimeoutError: when Redis has never been read, as
                there is then no time to carry forward (the caller's outage handling applies).
        """
        sent = self.monotonic()
        self._next_refresh = sent + self.refresh_seconds  # tried once a period, even while Redis is away
        try:
            seconds, microseconds = self.connection.time()
        except OUTAGE_ERRORS:
            if self._server_at_reading is None:
                raise
            log.debug("cannot read Redis's TIME; carrying the last reading forward")
            return
        received = self.monotonic()
        # The server read its clock somewhere inside the round trip; its middle is the best guess.
        self._server_at_reading = seconds + microseconds / 1_000_000
        self._monotonic_at_reading = (sent + received) / 2
