"""The RQ job that carries tasks to a worker: built here for the orchestrators' commit and for a
worker that hands unfinished tasks back, so both write the same job.

The job runs :data:`TASK_ENTRY_POINT` with ``[tasks, events key]`` as its arguments, in RQ's
JSON serializer (never pickle); a worker runs no job that names another function.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from redis import Redis
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq.utils import now, utcformat

from orchestrator.protocol import json_text
from orchestrator.protocol.keys import SharedKeys
from orchestrator.protocol.tasks import Task

TASK_ENTRY_POINT = "worker.entry.run_tasks"
"""The only function an RQ job of redstep's names (the worker's entry, by its import path)."""
JOB_TIMEOUT_SECONDS = 900
"""How long a worker lets a job's functions run at most: Lambda's longest timeout."""
TIMEOUT_GRACE_SECONDS = 5
"""How long past its task's TimeoutSeconds a function may still run before its worker stops it.

By then the orchestrators' timer has failed the task as States.Timeout (it fires within its
loop's poll interval of the due time), so the worker's stopping it never races that verdict.
"""
FAILED_JOB_TTL_SECONDS = 86_400


def rq_job_fields(tasks: list[Task], keys: SharedKeys) -> tuple[str, dict[str, Any]]:
    """The id and hash fields of an RQ job that runs ``tasks`` on a worker, as rq 2.x stores them.

    Only the id, the times, the data and the description differ from one task job to the next;
    the rest comes from a job RQ built once (``Job.create`` and ``to_dict`` cost more than the
    rest of a step's commit).
    """
    created = utcformat(now())
    fields = dict(_fields_every_job_shares(keys.task_queue_name))
    fields["created_at"] = fields["enqueued_at"] = created
    fields["timeout"] = job_timeout_for(tasks)
    # What RQ's JSONSerializer writes, faster: rq reads it with json.loads, compact or not.
    fields["data"] = json_text.dumps([TASK_ENTRY_POINT, None, [tasks, keys.events], {}])
    fields["description"] = f"{TASK_ENTRY_POINT}({len(tasks)} task(s))"
    return str(uuid.uuid4()), fields


def job_timeout_for(tasks: Sequence[Mapping[str, Any]]) -> int:
    """How long a worker lets the job that carries ``tasks`` run (RQ's job timeout).

    Lambda's longest, JOB_TIMEOUT_SECONDS; less when every task has a TimeoutSeconds: their
    longest and TIMEOUT_GRACE_SECONDS. The tasks of a job were scheduled together, before the
    job started, so when that time is up every one still unfinished is past its own timeout.
    """
    limits = [task.get("timeout_seconds") for task in tasks]
    if not limits or any(limit is None for limit in limits):
        return JOB_TIMEOUT_SECONDS
    longest = max(float(limit) for limit in limits if limit is not None)
    return min(JOB_TIMEOUT_SECONDS, math.ceil(longest) + TIMEOUT_GRACE_SECONDS)


def timed_by_own_timeouts(tasks: Sequence[Mapping[str, Any]], job_timeout: float) -> bool:
    """Whether a job of ``tasks`` allowed ``job_timeout`` seconds got them from its tasks' own timeouts."""
    return job_timeout < JOB_TIMEOUT_SECONDS and job_timeout == job_timeout_for(tasks)


@cache
def _fields_every_job_shares(queue_name: str) -> dict[str, Any]:
    """The fields of a task job on ``queue_name`` that are the same for every one, as RQ writes them."""
    job = Job.create(
        func=TASK_ENTRY_POINT,
        args=[[], ""],
        id="0",
        connection=Redis(),  # Job.create wants one; building the fields does no I/O
        serializer=JSONSerializer,
        result_ttl=0,
        failure_ttl=FAILED_JOB_TTL_SECONDS,
        timeout=JOB_TIMEOUT_SECONDS,
        status=JobStatus.QUEUED,
    )
    job.origin = queue_name
    fields = job.to_dict()
    fields["status"] = JobStatus.QUEUED.value
    return fields
