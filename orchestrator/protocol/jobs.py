"""The RQ job that carries tasks to a worker: built here for the orchestrators' commit and for a
worker that hands unfinished tasks back, so both write the same job.

The job runs :data:`TASK_ENTRY_POINT` with ``[tasks, events key]`` as its arguments, in RQ's
JSON serializer (never pickle); a worker runs no job that names another function.
"""

from __future__ import annotations

import uuid
from typing import Any

import redis
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from orchestrator.protocol.keys import SharedKeys
from orchestrator.protocol.tasks import Task

TASK_ENTRY_POINT = "worker.entry.run_tasks"
"""The only function an RQ job of redstep's names (the worker's entry, by its import path)."""
JOB_TIMEOUT_SECONDS = 900
FAILED_JOB_TTL_SECONDS = 86_400


def rq_job_fields(tasks: list[Task], keys: SharedKeys, connection: redis.Redis) -> tuple[str, dict[str, Any]]:
    """The id and hash fields of an RQ job that runs ``tasks`` on a worker, as rq 2.x stores them.

    Args:
        connection: rq's Job wants one, though building the fields does no I/O.
    """
    job = Job.create(
        func=TASK_ENTRY_POINT,
        args=[tasks, keys.events],
        id=str(uuid.uuid4()),
        connection=connection,
        serializer=JSONSerializer,
        result_ttl=0,
        failure_ttl=FAILED_JOB_TTL_SECONDS,
        timeout=JOB_TIMEOUT_SECONDS,
        description=f"{TASK_ENTRY_POINT}({len(tasks)} task(s))",
        status=JobStatus.QUEUED,
    )
    job.origin = keys.task_queue_name
    job.enqueued_at = job.created_at
    fields = job.to_dict()
    fields["status"] = JobStatus.QUEUED.value
    # rq reads uncompressed data as well; plain JSON text can travel inside the commit's JSON.
    fields["data"] = job.data.decode()
    return job.id, fields
