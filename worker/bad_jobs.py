"""Moving a job that cannot run out of a worker's way, with its reason, and failing its tasks.

A job id on the task queue whose job is missing, malformed or another application's goes to
the malformed stream (``{p}:malformed``, where the orchestrators put the events they cannot
apply, and which ``redstep status`` counts) with the fields a person needs:

    ``stream``   the RQ task queue it was taken from
    ``id``       the job id
    ``reason``   why no worker runs it
    ``fields``   JSON: ``{"type": <the key's Redis type>, "value": <a bounded copy>, "truncated": bool}``

The job's own key is left as it is: it may be another application's. Each task its data
names, of an execution that exists, fails as Lambda.ServiceException (the function never ran,
as when Lambda's service fails an invocation), so the execution moves on through its Retry
and Catch instead of waiting for a task nobody will run. The token fences a forged task: the
orchestrator takes a report only for a token it waits on.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from redis import Redis
from redis.commands.core import Script

from orchestrator.protocol.decoding import lossless_text
from orchestrator.protocol.invocation import error_document
from orchestrator.protocol.keys import EVENT_FIELD, SharedKeys
from orchestrator.protocol.scripts import lua_script

SERVICE_ERROR = "Lambda.ServiceException"

# A bounded copy: enough to see what was written, never a way to fill the stream.
COPY_FIELDS = 32
COPY_FIELD_NAME_CHARS = 100
COPY_VALUE_CHARS = 1000
COPY_STRING_BYTES = 2000

log = logging.getLogger(__name__)

_set_aside: Script | None = None


def set_aside(
    connection: Redis,
    keys: SharedKeys,
    claimed_key: str,
    raw_id: bytes | str,
    reason: str,
    tasks: list[dict[str, Any]],
    copy: str,
) -> int:
    """Move the claimed job ``raw_id`` to the malformed stream and fail the ``tasks`` it names.

    Returns:
        How many tasks were failed, or -1 when the job was no longer claimed (nothing moved).
    """
    global _set_aside
    if _set_aside is None:
        _set_aside = lua_script(connection, "set_aside_job")
    job_id = lossless_text(raw_id)
    reports = [failure_report(task, job_id, reason, keys.malformed) for task in tasks]
    script_keys = [claimed_key, keys.malformed, keys.events, *(keys.execution(t["execution"]) for t in tasks)]
    args = [raw_id, keys.task_queue, job_id, reason, copy, EVENT_FIELD, *reports]
    failed = int(_set_aside(keys=script_keys, args=args, client=connection))
    if failed >= 0:
        log.error(
            "job %s moved aside to %s, %d task(s) failed as %s: %s",
            job_id,
            keys.malformed,
            failed,
            SERVICE_ERROR,
            reason,
        )
    return failed


def failure_report(task: dict[str, Any], job_id: str, reason: str, malformed_key: str) -> str:
    """The TaskFailed report (JSON) of a task whose job could not be run."""
    message = f"The task's job {job_id} could not be run and was moved to {malformed_key}: {reason}"
    report = {
        "type": "TaskFailed",
        "execution": task["execution"],
        "token": task["token"],
        "error": SERVICE_ERROR,
        "cause": error_document(SERVICE_ERROR, message),
    }
    return json.dumps(report, separators=(",", ":"))


def bounded_copy(connection: Redis, key: str, hash_fields: dict[Any, Any] | None = None) -> str:
    """A bounded JSON copy of what ``key`` holds, for a person to read; ``hash_fields`` if already read."""
    if hash_fields is not None:
        return json.dumps(copy_of_hash(hash_fields))
    kind = lossless_text(connection.type(key))
    if kind == "hash":
        return json.dumps(copy_of_hash(connection.hgetall(key)))
    if kind == "string":
        value = connection.getrange(key, 0, COPY_STRING_BYTES)
        truncated = len(value) > COPY_STRING_BYTES
        return json.dumps(
            {"type": kind, "value": lossless_text(value[:COPY_STRING_BYTES]), "truncated": truncated}
        )
    return json.dumps({"type": kind, "value": None, "truncated": kind != "none"})


def copy_of_hash(fields: dict[Any, Any]) -> dict[str, Any]:
    """At most COPY_FIELDS fields of a hash, each name and value cut to a bounded length."""
    items = sorted(fields.items())[:COPY_FIELDS]
    truncated = len(fields) > COPY_FIELDS
    value: dict[str, str] = {}
    for name, field in items:
        name_text, field_text = lossless_text(name), lossless_text(field)
        truncated = truncated or len(name_text) > COPY_FIELD_NAME_CHARS or len(field_text) > COPY_VALUE_CHARS
        value[name_text[:COPY_FIELD_NAME_CHARS]] = field_text[:COPY_VALUE_CHARS]
    return {"type": "hash", "value": value, "truncated": truncated}
