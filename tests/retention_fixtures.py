"""What the retention tests share: a clock a test moves on, and settings keeping executions an hour."""

from __future__ import annotations

import time

HOUR = 3600.0


class Clock:
    """The real time, plus however far a test has moved it on."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset
