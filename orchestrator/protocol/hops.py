"""Opt-in timestamps of an execution's hops, for the benchmark's latency breakdown.

``REDSTEP_TRACE_HOPS=<directory>`` (read once, when the process imports this module) makes
each orchestrator and worker process append one JSON line per hop it takes part in to
``<directory>/<pid>.jsonl``: when a commit landed, when a worker claimed a task job, when the
function began and ended, when its report was appended. Without it, :data:`HOPS` is off and
each call site costs one attribute check. The lines go to a local file, never to Redis, so
tracing adds no round trip to what it measures.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import IO, Any

TRACE_ENV = "REDSTEP_TRACE_HOPS"


class HopTrace:
    """Where this process writes its hop timestamps, if anywhere."""

    def __init__(self, directory: str | None) -> None:
        self.on = bool(directory)
        self._directory = Path(directory) if directory else None
        self._sink: IO[str] | None = None

    def note(self, kind: str, **fields: Any) -> None:
        """Append one line: ``kind``, wall-clock time ``at`` unless given, and ``fields``."""
        if self._sink is None:
            assert self._directory is not None
            self._directory.mkdir(parents=True, exist_ok=True)
            self._sink = (self._directory / f"{os.getpid()}.jsonl").open("a", buffering=1)
        fields.setdefault("at", time.time())
        self._sink.write(json.dumps({"kind": kind, **fields}) + "\n")


HOPS = HopTrace(os.environ.get(TRACE_ENV))
