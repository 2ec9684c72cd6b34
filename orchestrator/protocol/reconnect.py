"""Riding out a Redis outage: bounded, jittered back-off, and one log line per outage.

A restarted Redis, a dropped connection (CLIENT KILL) or a server still loading its AOF
all surface in redis-py as ConnectionError (BusyLoadingError is one) or TimeoutError. A Redis
that answers but refuses every write for its own state is as good as gone: a full one under
``noeviction`` (OOM), a replica after a failover (READONLY), a replica cut off from its master
(MASTERDOWN), one that cannot persist what it would write (MISCONF: a full disk). The process
keeps its state (what it consumed is still pending in Redis) and retries; the delay doubles
from ``initial`` up to ``maximum``, and each delay is drawn from its upper half so that many
processes that lost Redis at once do not all come back at once.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

import redis
from redis._parsers.base import BaseParser

from orchestrator.settings import Settings


class PersistenceError(redis.exceptions.ResponseError):
    """MISCONF: Redis refuses writes because it cannot persist them (say, a full disk under its
    append-only file, or a failed snapshot with ``stop-writes-on-bgsave-error``)."""


# redis-py leaves a MISCONF reply a plain ResponseError; its parsers (hiredis's included) look an
# error's first word up in this table, so named here it is raised as the refusal it is, as OOM is.
BaseParser.EXCEPTION_CLASSES.setdefault("MISCONF", PersistenceError)

# Nothing the refused command would have written was written (a script is refused at its first
# write, before any), and nothing the caller sent was wrong: the same command succeeds later.
REFUSAL_ERRORS = (
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.MasterDownError,
    PersistenceError,
)
OUTAGE_ERRORS = (redis.ConnectionError, redis.TimeoutError, *REFUSAL_ERRORS)

T = TypeVar("T")

log = logging.getLogger(__name__)


class Backoff:
    """Delays that double from ``initial`` to at most ``maximum``, each jittered by up to half.

    Args:
        initial: the first delay's upper bound, in seconds.
        maximum: no delay exceeds this.
        random_fraction: a source of numbers in [0, 1); tests pass their own.
    """

    def __init__(
        self, initial: float, maximum: float, random_fraction: Callable[[], float] = random.random
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.random_fraction = random_fraction
        self.attempts = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one failed attempt."""
        ceiling = min(self.maximum, self.initial * 2**self.attempts)
        self.attempts += 1
        return ceiling / 2 + self.random_fraction() * ceiling / 2

    def reset(self) -> None:
        self.attempts = 0


class Outage:
    """Tracks one process's view of Redis: logs when it goes away and when it comes back.

    Args:
        backoff: the delays between attempts while Redis is away.
        what: the process, as the log lines name it ("orchestrator o1").
        clock: a monotonic time source.
    """

    def __init__(self, backoff: Backoff, what: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.backoff = backoff
        self.what = what
        self.clock = clock
        self.since: float | None = None
        self.refused = False  # whether this outage began with writes refused, not a lost connection

    @classmethod
    def for_settings(cls, settings: Settings, what: str) -> Outage:
        backoff = Backoff(settings.reconnect_initial_seconds, settings.reconnect_max_seconds)
        return cls(backoff, what)

    @property
    def ongoing(self) -> bool:
        return self.since is not None

    def failed(self, error: Exception) -> float:
        """Note a failed attempt; returns how long to wait before the next one."""
        if self.since is None:
            self.since = self.clock()
            self.refused = isinstance(error, REFUSAL_ERRORS)
            if self.refused:
                log.warning("%s: Redis refuses writes (%s); trying again with back-off", self.what, error)
            else:
                log.warning("%s lost Redis (%s); reconnecting with back-off", self.what, error)
        return self.backoff.next_delay()

    def succeeded(self) -> None:
        """Note a successful round trip; ends the outage, if there was one."""
        if self.since is None:
            return
        back = "Redis took writes again" if self.refused else "reconnected to Redis"
        log.warning(
            "%s %s after %.1fs (%d attempt(s))",
            self.what,
            back,
            self.clock() - self.since,
            self.backoff.attempts,
        )
        self.since = None
        self.backoff.reset()


def retry_through_outage(action: Callable[[], T], attempts: int, what: str) -> T:
    """``action()``, tried again with back-off while Redis is lost, up to ``attempts`` times in all.

    Only for actions that are safe to repeat: a lost reply may hide one that did happen.

    Raises:
        redis.ConnectionError, redis.TimeoutError: the last attempt's, when Redis stays away.
        redis.exceptions.OutOfMemoryError, ReadOnlyError, MasterDownError: the last attempt's,
            when Redis still refuses writes.
    """
    return retried_through_outage(action, attempts, what)[0]


def retried_through_outage(action: Callable[[], T], attempts: int, what: str) -> tuple[T, bool]:
    """As :func:`retry_through_outage`, and whether ``action`` had to be tried more than once.

    A repeated call may be answering for one whose reply was lost, which callers tell apart.
    """
    backoff = Backoff(0.05, 2.0)
    while True:
        try:
            return action(), backoff.attempts > 0
        except OUTAGE_ERRORS:
            if backoff.attempts + 1 >= attempts:
                raise
            log.warning("%s: Redis did not answer or refused the write; trying again", what)
            time.sleep(backoff.next_delay())
