"""Crash points: places where a test can make the orchestrator SIGKILL itself on purpose.

``REDSTEP_FAULT_POINT=<point>[:<n>]`` arms one point: the n-th time (default: the first)
the process reaches it, it kills itself with SIGKILL, as an OOM kill or a power cut would,
with no chance to clean up. Unset, :meth:`FaultPoints.reach` returns at once.

The points of one orchestrator iteration, in order:

``after-timers``
    due timers were moved onto the event stream (only counted when some fired).
``after-source-batch``
    a batch of source-queue messages was read, before their executions start.
``after-read-events``
    a batch of events was read from the event stream, before anything is computed.
``before-commit``
    a batch's transitions are computed, before the commit script is sent.
``after-commit``
    the commit script's reply was read. An iteration sends a commit and computes its next
    part before it reads the reply (runtime.overlap), so another part's ``before-commit`` may
    come between a commit's two points; a process killed there has sent that commit whole,
    and Redis applies it.

The commit is one Lua script: it checks versions and pending entries, then writes the
executions and their history, acknowledges the consumed entries, enqueues the next tasks
as RQ jobs and publishes the notifications. Redis runs a script whole, so there is no
moment between the enqueue and the acknowledgement, or between the state change and the
publish, at which a crash could split them: those windows collapse into ``before-commit``
(nothing happened) and ``after-commit`` (everything did).

The wall-clock knob that workers use as well lives in :mod:`orchestrator.protocol.faults`.
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)

POINTS = frozenset(
    {"after-timers", "after-source-batch", "after-read-events", "before-commit", "after-commit"}
)


class FaultPoints:
    """The armed crash point of this process, if any.

    Args:
        spec: ``<point>[:<n>]``, or empty to arm nothing.

    Raises:
        ValueError: when the point is unknown or ``n`` is not a positive integer.
    """

    def __init__(self, spec: str = "") -> None:
        self.point: str | None = None
        self.remaining = 0
        if not spec:
            return
        point, _, count = spec.partition(":")
        if point not in POINTS:
            raise ValueError(f"unknown fault point {point!r}; known: {', '.join(sorted(POINTS))}")
        if count and (not count.isdigit() or int(count) < 1):
            raise ValueError(f"fault point count must be a positive integer, not {count!r}")
        self.point, self.remaining = point, int(count or 1)

    def reach(self, point: str) -> None:
        """Note that the process reached ``point``; die there if it is armed and its count is up."""
        if point != self.point:
            return
        self.remaining -= 1
        if self.remaining == 0:
            log.warning("fault point %s reached: killing this process (SIGKILL)", point)
            for handler in logging.getLogger().handlers:
                handler.flush()
            os.kill(os.getpid(), signal.SIGKILL)
