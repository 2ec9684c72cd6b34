"""The counters every redstep process adds to, kept in one Redis hash so that they sum.

Orchestrators, workers and ``serve`` processes all add to ``{p}:metrics`` with HINCRBY, each
inside a script call or pipeline it makes anyway; ``/metrics`` reads the hash whole
(orchestrator.metrics). Counts therefore add up across processes and outlive any of them.

A field is the JSON array ``[<metric>, <label value>, ...]``; its value an integer. A
histogram is one field per bucket (``[<metric>_bucket, <labels>..., <le>]``: how many
observations fell at or under ``le`` and above the bound before it, so the reader makes them
cumulative) and a ``[<metric>_sum_us, <labels>...]`` field: the sum in microseconds, because
HINCRBY adds integers only.

``REDSTEP_METRICS=0`` in a process's environment turns its counting off.
"""

from __future__ import annotations

import json
import os
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

METRICS_SWITCH = "REDSTEP_METRICS"

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
"""Upper bounds (seconds) of the duration histograms' buckets; ``+Inf`` follows the last."""

INF = "+Inf"
BUCKET_LABELS = (*(repr(bound) for bound in DURATION_BUCKETS), INF)
"""The ``le`` label of each bucket, in order."""

# Errors named as they are; any other error is counted as "other", so a function that raises
# exceptions of ever new classes cannot make the series grow without end.
KNOWN_ERRORS = frozenset(
    {
        "States.ALL",
        "States.DataLimitExceeded",
        "States.HeartbeatTimeout",
        "States.Runtime",
        "States.TaskFailed",
        "States.Timeout",
        "States.Permissions",
        "Lambda.Unknown",
        "Lambda.ResourceNotFoundException",
        "Sandbox.Timedout",
        "Runtime.MarshalError",
        "Runtime.ExitError",
    }
)
OTHER_ERROR = "other"


def metrics_key(prefix: str) -> str:
    """The hash of every counter under ``prefix``."""
    return f"{prefix}:metrics"


def counting_enabled() -> bool:
    """Whether this process counts: unless ``REDSTEP_METRICS`` is ``0``, ``false`` or ``off``."""
    return os.environ.get(METRICS_SWITCH, "1").strip().lower() not in ("0", "false", "off", "no")


@lru_cache(maxsize=4096)
def field(metric: str, *labels: str) -> str:
    """The hash field of ``metric`` with these label values (cached: the hot path asks often)."""
    return json.dumps([metric, *labels], separators=(",", ":"))


def parse_field(text: str) -> tuple[str, tuple[str, ...]] | None:
    """The metric and label values of a hash field; None for a field this layout did not write."""
    try:
        parts = json.loads(text)
    except ValueError:
        return None
    if not isinstance(parts, list) or not parts or not all(isinstance(part, str) for part in parts):
        return None
    return parts[0], tuple(parts[1:])


def bucket_index(seconds: float) -> int:
    """The index in BUCKET_LABELS of the bucket an observation of ``seconds`` falls in."""
    return bisect_left(DURATION_BUCKETS, seconds)


def bucket_bound(seconds: float) -> str:
    """The ``le`` of the bucket an observation of ``seconds`` falls in."""
    return BUCKET_LABELS[bisect_left(DURATION_BUCKETS, seconds)]


def observe(counts: Counter[str], metric: str, labels: tuple[str, ...], seconds: float) -> None:
    """Add one observation of ``seconds`` to histogram ``metric`` in ``counts``."""
    counts[field(f"{metric}_bucket", *labels, bucket_bound(seconds))] += 1
    counts[field(f"{metric}_sum_us", *labels)] += max(0, round(seconds * 1_000_000))


def bounded_error(error: Any) -> str:
    """An error name as a label: the ASL and Lambda errors as they are, anything else "other"."""
    return error if error in KNOWN_ERRORS else OTHER_ERROR


def flat(counts: Mapping[str, int]) -> list[str]:
    """``counts`` as field, increment, field, increment, ... (the non-zero ones)."""
    pairs = []
    for name, by in counts.items():
        if by:
            pairs += [name, str(by)]
    return pairs


class TaskMeter:
    """What a worker counts of the tasks of one job: durations, and failures by error.

    The counts travel with the job's reports, in the same script call (append_reports.lua),
    which adds them once even when a lost reply makes the worker repeat the call.
    """

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = counting_enabled() if enabled is None else enabled
        self.counts: Counter[str] = Counter()
        self._mark = time.monotonic()

    def lap(self, task: Mapping[str, Any], report: Mapping[str, Any]) -> None:
        """Count ``task``, ended as ``report`` says, as running since the meter began or the last lap."""
        now = time.monotonic()
        self.took(task, report, now - self._mark)
        self._mark = now

    def took(self, task: Mapping[str, Any], report: Mapping[str, Any], seconds: float) -> None:
        """Count one task that ran ``seconds`` and ended as ``report`` says."""
        if not self.enabled:
            return
        function = str(task.get("function") or "")
        observe(self.counts, "task_duration", (function,), seconds)
        if report.get("type") == "TaskFailed":
            self.counts[field("task_failures", function, bounded_error(report.get("error")))] += 1

    def script_arguments(self, prefix: str) -> tuple[list[str], list[str]]:
        """The extra KEYS and ARGV of append_reports.lua: the hash, and the increments counted."""
        pairs = flat(self.counts)
        if not pairs:
            return [], []
        return [metrics_key(prefix)], [str(len(pairs) // 2), *pairs]
