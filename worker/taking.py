"""Taking a claimed job: its hash read and, for a task job as the orchestrators write them, its
start (leases and RQ's bookkeeping) applied, in one script call (lua/take_job.lua).

Reading the hash and starting the job took a round trip each, both on the path of every task.
The script starts only what passes its checks; the worker still decodes the hash strictly
(worker.jobs), and a job the script left alone is started as before (START, worker.leases).
A job the script started that the strict decoding refuses after all is put back as it was
claimed, its leases removed, before it is moved aside.

Most jobs never come here: their hash comes with the dequeue (peek_claimed.lua,
worker.claiming) and they are started while their functions run (WorkerLeases.send_start).
This call serves a job whose hash did not (the dequeue's read met a Redis that had lost the
script, or another id at the claimed list's tail).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from redis import Redis
from redis.typing import EncodableT

from orchestrator.protocol.decoding import lossless_text
from orchestrator.protocol.jobs import JOB_TIMEOUT_SECONDS, TASK_ENTRY_POINT
from orchestrator.protocol.keys import SharedKeys
from orchestrator.protocol.reconnect import retried_through_outage
from worker.direct_calls import direct_script
from worker.leases import START_ATTEMPTS

# The timeout a job must carry for the bookkeeping recorded before its hash is read to fit it.
EXPECTED_TIMEOUT = str(JOB_TIMEOUT_SECONDS)


@dataclass(frozen=True)
class Taken:
    """What take_job.lua found under a claimed job's id, and whether it started the job.

    Attributes:
        kind: the Redis type of the job's key ("none" when there is no such key).
        fields: the job's hash as HGETALL gives it (empty unless ``kind`` is "hash").
        leases: the lease records set, in the order of the job's addressable tasks, when the
            script started the job (as Redis holds them, byte for byte); None when it did not.
        claimed: whether the job was still in the worker's claimed list when it started.
        retried: whether the call was sent again after a lost connection.
    """

    kind: str
    fields: dict[bytes, bytes]
    leases: list[bytes] | None
    claimed: bool
    retried: bool


class JobTaker:
    """One worker's take_job.lua calls."""

    def __init__(self, connection: Redis, keys: SharedKeys, worker: str, lease_seconds: float) -> None:
        self.connection = connection
        self.keys = keys
        self.worker = worker
        self.lease_seconds = lease_seconds
        self._take = direct_script(connection, "take_job")

    def take(self, job_id: str, recorded: Sequence[EncodableT]) -> Taken:
        """Read job ``job_id``'s hash and start it when the script may, with ``recorded`` RQ bookkeeping.

        Repeated after a lost connection with the same request id, so it sets the same leases.

        Raises:
            redis.ConnectionError, redis.TimeoutError: when Redis stays away.
        """
        keys = [SharedKeys.rq_job(job_id), self.keys.claimed(self.worker), self.keys.leases]
        arguments = [
            job_id,
            repr(float(self.lease_seconds)),
            self.worker,
            str(uuid.uuid4()),
            TASK_ENTRY_POINT,
            self.keys.task_queue_name,
            self.keys.events,
            EXPECTED_TIMEOUT,
            *recorded,
        ]

        def take() -> list[object]:
            return list(self._take(keys, arguments))

        reply, retried = retried_through_outage(take, START_ATTEMPTS, f"taking job {job_id}")
        kind, flat, started = lossless_text(reply[0]), reply[1], int(reply[2])
        fields = {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}
        if not started:
            return Taken(kind, fields, None, False, retried)
        return Taken(kind, fields, list(reply[4:]), bool(reply[3]), retried)

    def put_back(self, job_id: str, leases: list[bytes]) -> None:
        """Undo a start the strict decoding refused: the job claimed again, its leases gone, atomically."""
        with self.connection.pipeline() as pipe:
            pipe.rpush(self.keys.claimed(self.worker), job_id)
            if leases:
                pipe.zrem(self.keys.leases, *leases)
            pipe.execute()
