"""The lease a worker holds on each task it runs: what fails the task when the worker goes silent.

A lease is a member of the ``{p}:leases`` zset (protocol.keys), scored by when it runs out on
Redis's clock: the scripts that set and renew leases read Redis's ``TIME`` themselves, and so
does the orchestrators' script that fires them, so no process's own clock decides when a
task's worker counts as gone. The member is a lease record, compact JSON::

    {"execution": ..., "token": ..., "function": ..., "worker": ..., "lease_seconds": ..., "request_id": ...}

It names its worker, so a worker removes exactly the records it added (a task handed back and
run again elsewhere has a second record), and holds what the orchestrators need to word the
TaskFailed event an expired lease turns into (runtime/lua/fire_timers.lua):

    error  ``LEASE_ERROR``
    cause  Lambda's error document (``errorMessage``: ``LEASE_MESSAGE`` filled with the worker and
           ``lease_seconds``; ``errorType``: ``LEASE_ERROR``; ``requestId``: ``request_id``;
           ``stackTrace``: ``[]``)

Executions stored before leases had their own key hold their leases in ``{p}:timers`` as
ready-made TaskFailed events; the timer path still fires those.
"""

from __future__ import annotations

import uuid
from typing import Any, NotRequired, TypedDict

from orchestrator.protocol import json_text

LEASE_ERROR = "Lambda.Unknown"
LEASE_MESSAGE = "The worker running the task stopped responding: worker %s renewed no lease for %.2f seconds"
"""The cause's errorMessage, in the format Lua's string.format and Python's ``%`` share."""


class LeaseRecord(TypedDict):
    """A lease member, decoded."""

    execution: str
    token: str
    function: NotRequired[str]  # the task's function, for the failure count (absent in older records)
    worker: str
    lease_seconds: float
    request_id: str


def lease_record(task: dict[str, Any], worker: str, lease_seconds: float) -> str:
    """The lease member of ``task`` (an addressable Task message) held by ``worker``."""
    record: LeaseRecord = {
        "execution": task["execution"],
        "token": task["token"],
        "function": str(task.get("function", "")),
        "worker": worker,
        "lease_seconds": float(lease_seconds),
        "request_id": str(uuid.uuid4()),
    }
    return json_text.dumps(record)  # orjson: the worker makes one per task, before its function runs


def lease_message(worker: str, lease_seconds: float) -> str:
    """The errorMessage of the TaskFailed event an expired lease of ``worker`` turns into."""
    return LEASE_MESSAGE % (worker, lease_seconds)
