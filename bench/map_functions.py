"""The functions bench/map_scale.py's Map calls on every item (workers load them with ``--functions``)."""

from __future__ import annotations

import os
from typing import Any


def which_worker(event: Any, context: Any) -> int:
    """Return the worker's process id: a few bytes per item, and the spread across workers."""
    return os.getpid()


def padded(event: Any, context: Any) -> str:
    """Return ``event["bytes"]`` bytes of text: a large result for every item."""
    return "x" * int(event["bytes"])
