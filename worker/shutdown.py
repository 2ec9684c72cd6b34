"""What SIGTERM and SIGINT ask of a worker process, honoured whatever the worker is doing.

RQ keeps its stop request on the worker object of one work round, sets it only while a job
runs, and otherwise raises out of wherever the signal lands; a worker that lost Redis and
starts its work loop afresh forgot it, and slept on in its back-off. Here one request lives
for the whole process:

- waiting for a job, or for Redis to come back (an :meth:`Shutdown.interruptible` stretch):
  the wait ends at once;
- running a job (:meth:`Shutdown.running_job`): the job may finish, as RQ's warm shutdown
  lets it, but for at most ``grace_seconds``; then the worker stops cold, and run_tasks
  hands the unfinished tasks back to the head of the queue for another worker, unchanged
  (same attempt, no Retry spent), so nobody waits for their lease to fire;
- anywhere else: the work loop sees the request at its next step.

Once the request is all that is left, Redis commands are tried once instead of with redis-py's
retries (about 4 s each against a server that is gone): tidying up after a stop is best effort,
since leases, the liveness key's expiry and other workers' reapers cover whatever is left.
A second signal, more than a second after the first (Ctrl-C in a terminal and ``redstep up``
both deliver one), stops the worker at once, wherever it is.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq.exceptions import StopRequested

from worker.entry import ColdShutdown

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# A repeat this soon is the same request delivered twice, not a second one.
REPEAT_WINDOW_SECONDS = 1.0

log = logging.getLogger(__name__)


class Shutdown:
    """One worker process's stop request, from its first signal to its exit.

    Args:
        grace_seconds: how long a running job may go on after the request.
        connection: the worker's Redis client, whose retries end with the request.
        clock: a monotonic time source.
    """

    def __init__(
        self, grace_seconds: float, connection: Redis, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.grace_seconds = grace_seconds
        self.connection = connection
        self.clock = clock
        self.requested = threading.Event()
        self._requested_at = float("-inf")
        self._interruptible = False
        self._running = False
        self._grace_timer: threading.Timer | None = None
        self._grace_over = False
        self._main_thread = threading.main_thread().ident

    def install(self) -> Callable[[], None]:
        """Handle SIGTERM and SIGINT from now on; returns a function that puts the old handlers back."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """A stretch of waiting that a stop request ends at once, with StopRequested.

        Raises:
            StopRequested: when the request came before the stretch or comes during it.
        """
        self._interruptible = True
        try:
            if self.requested.is_set():
                raise StopRequested()
            yield
        finally:
            self._interruptible = False

    @contextlib.contextmanager
    def running_job(self) -> Iterator[None]:
        """A stretch of running a job, which a stop request lets go on for ``grace_seconds``."""
        self._running = True
        try:
            yield
        finally:
            self._running = False
            self._cancel_grace()
            if self.requested.is_set():
                self.tidy_up_only()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, less when a stop is requested; whether one was."""
        return self.requested.wait(seconds)

    def tidy_up_only(self) -> None:
        """Try each Redis command once from now on: only best-effort tidying up is left."""
        self.connection.set_retry(Retry(NoBackoff(), 0))

    # -- the signal handler (runs in the main thread, between two bytecodes) ----------------------

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._grace_over:
            self._grace_over = False
            if self._running:
                self._stop_now(f"the running job outlived the stop grace of {self.grace_seconds:g} s")
            return
        if not self.requested.is_set():
            self._first_request(signal.Signals(signum).name)
            return
        if self.clock() - self._requested_at < REPEAT_WINDOW_SECONDS:
            log.debug("%s ignored: received twice within a second", signal.Signals(signum).name)
            return
        self._stop_now(f"{signal.Signals(signum).name} received again")

    def _first_request(self, name: str) -> None:
        self._requested_at = self.clock()
        self.requested.set()
        if self._running:
            log.warning(
                "warm shut down requested (%s): the running job may finish within %g s, then it is"
                " handed back; send it again to stop at once",
                name,
                self.grace_seconds,
            )
            self._arm_grace()
            return
        log.warning("warm shut down requested (%s): stopping", name)
        self.tidy_up_only()
        if self._interruptible:
            raise StopRequested()

    def _stop_now(self, why: str) -> None:
        log.warning("cold shut down: %s", why)
        self._cancel_grace()
        self.tidy_up_only()
        raise ColdShutdown()

    # -- the grace timer ---------------------------------------------------------------------------

    def _arm_grace(self) -> None:
        timer = threading.Timer(self.grace_seconds, self._end_grace)
        timer.daemon = True
        self._grace_timer = timer
        timer.start()

    def _cancel_grace(self) -> None:
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None

    def _end_grace(self) -> None:
        # Only the main thread can interrupt the job; a signal to it does, even in a sleep.
        self._grace_over = True
        if self._main_thread is not None:
            signal.pthread_kill(self._main_thread, signal.SIGTERM)
