"""Fault knobs a worker and an orchestrator both obey (tests only).

The orchestrator's crash points are its own (:mod:`orchestrator.runtime.faults`).
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


def skew_wall_clock(seconds: float) -> None:
    """Tests only: make this process's ``time.time()`` run ``seconds`` ahead (or behind, if negative).

    It plays a machine whose clock is off, to show that no due time is judged by it: timers,
    leases, visibility deadlines and retention go by Redis's clock (see runtime.clock, and the
    lease scripts, which read Redis's ``TIME`` themselves).
    """
    if not seconds:
        return
    real_time = time.time
    time.time = lambda: real_time() + seconds  # type: ignore[assignment]
    log.warning("fault injection: this process's wall clock runs %+.0f s off", seconds)
