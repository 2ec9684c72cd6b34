"""Fewer and shorter garbage-collector pauses in the long-running processes (orchestrators, workers).

One step of an execution allocates thousands of short-lived objects (JSON documents, events,
a job's fields) and almost never a reference cycle. With CPython's defaults the young
generation is collected every 700 allocations, several times inside each step, and now and
then a full collection walks everything the process built at start-up (modules, RQ's and
redis-py's classes, state machine definitions), which lands in some step's latency as a
pause of milliseconds. On the shared 2-core machine, runs with and without this taking
turns, the one-at-a-time p99 was lower in each of nine pairs: medians 27.7 -> 14.4 ms (one
worker, six pairs) and 25.4 -> 13.6 ms (`bench/pipeline.py`, three pairs).
"""

from __future__ import annotations

import gc

YOUNG_COLLECTION_EVERY = 10_000  # allocations (CPython's default: 700)
OLDER_COLLECTIONS_EVERY = (20, 100)  # young collections per middle one, middle per full (10, 10)


def settle_garbage_collector() -> None:
    """Collect once, keep what exists now out of every later collection, and collect less often.

    Call it when the process has finished starting, before its work loop.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, *OLDER_COLLECTIONS_EVERY)
