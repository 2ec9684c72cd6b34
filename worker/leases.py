"""Task leases and heartbeats: a worker that dies or freezes surfaces as a task error, never a hang.

Keys (``{p}`` is the prefix; every key: orchestrator.protocol.keys):
    ``{p}:leases``            zset of task leases: a lease record (protocol.leases) per task a
                              worker runs, scored by when it runs out on Redis's clock
    ``{p}:workers``           set of live worker names (a worker adds itself; a reaper removes it)
    ``{p}:worker:<name>``     string with a TTL of ``lease_seconds``: the worker is alive
    ``{p}:claimed:<name>``    list of RQ job ids the worker dequeued and has not started yet

A job's life on a worker:
    1. RQ dequeues with BLMOVE straight into the worker's claimed list (never a shared
       list), so a job popped by a worker that dies at once is still somewhere.
    2. START takes the job out of the claimed list and sets each task's lease,
       ``lease_seconds`` past Redis's ``TIME``, in one script call: every job is either claimed
       or leased. The dequeue reads the job's hash in its own round trip
       (``lua/peek_claimed.lua``, worker.claiming); a job as the orchestrators write it is then
       started (``lua/start_tasks.lua``) without waiting, while its functions run, and START's
       reply is read before the reports go out (:meth:`WorkerLeases.send_start`). Any other job
       starts in its preparation, before its functions. Every START carries RQ's bookkeeping
       (worker.bookkeeping).
    3. A thread renews the leases (``lua/renew_leases.lua``, again by Redis's ``TIME``) every
       ``lease_seconds / 3`` and sends a TaskHeartbeat at least every ``heartbeat_seconds / 3``
       for tasks that ask for one.
    4. The reports go out in one script call that also removes their leases (worker.entry).

A SIGKILLed or frozen worker renews nothing: the orchestrators fire its expired leases as
TaskFailed/Lambda.Unknown (runtime/lua/fire_timers.lua), so the state's Retry and Catch
apply; its claimed jobs (dequeued, never started) go back to the head of the queue once its
liveness key expires, moved by any other worker's reaper. A reaper that could not renew its own
key for a while (Redis away, or refusing writes) first gives every worker a lease's time to
renew theirs: none could meanwhile. A job given back from a worker that was only slow leaves
the queue again as that worker starts it (``lua/start_tasks.lua``). No clock of the worker's decides
when a lease runs out: the scripts that set, renew and fire leases all read Redis's ``TIME``.
A report and its lease can both reach the event stream only if the worker stalls past its
lease; the token is consumed once, so the second changes nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from redis.commands.core import Script
from redis.exceptions import ResponseError
from redis.typing import EncodableT

from orchestrator.protocol.keys import EVENT_FIELD, SharedKeys
from orchestrator.protocol.leases import lease_record
from orchestrator.protocol.reconnect import OUTAGE_ERRORS, retried_through_outage
from orchestrator.protocol.scripts import lua_script
from worker.bookkeeping import NO_COMMANDS
from worker.direct_calls import SentCall, direct_script

# How often START is tried while the connection is lost, with doubling delays (about 6 s in all).
START_ATTEMPTS = 8

log = logging.getLogger(__name__)


@dataclass
class HeldTask:
    """A task this worker holds: its lease member and when its last heartbeat went out."""

    task: dict[str, Any]
    lease: str | bytes
    heartbeat_seconds: float | None
    beaten_at: float = field(default=float("-inf"))


class WorkerLeases:
    """One worker process's leases, liveness key, heartbeats and reaper of dead workers' jobs.

    Args:
        connection: the worker's Redis connection (its pool is shared with this thread).
        prefix: the key prefix.
        worker: the worker's name (unique among live workers).
        lease_seconds: how long a task outlives its worker's silence.
        clock: a monotonic time source (seconds), for when heartbeats and reaping are due; a
            lease's end is set by Redis's clock (see the module's docstring).
    """

    def __init__(
        self,
        connection: Redis,
        prefix: str,
        worker: str,
        lease_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connection = connection
        self.keys = SharedKeys(prefix)
        self.worker = worker
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.workers_key = self.keys.workers
        self.claimed_key = self.keys.claimed(worker)
        self.alive_key = self.keys.alive(worker)
        self.start_keys = [self.claimed_key, self.keys.leases, self.keys.task_queue]  # start_tasks.lua's
        self._held: dict[str, list[HeldTask]] = {}
        self._started: dict[str, list[HeldTask]] = {}  # leases START set in a job's preparation
        # STARTs sent without waiting (:meth:`send_start`), their replies read by :meth:`confirm_start`.
        self._starting: dict[str, tuple[SentCall, list[str | bytes], Sequence[EncodableT]]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start: Script = lua_script(connection, "start_tasks")
        self._start_direct = direct_script(connection, "start_tasks")
        self._renew: Script = lua_script(connection, "renew_leases")
        self._reclaim: Script = lua_script(connection, "reclaim_jobs")
        self._give_back: Script = lua_script(connection, "give_back_jobs")
        self._reaped_at = float("-inf")
        self._renewals_failing = False  # whether the last tick met an outage (logged once per outage)

    # -- the worker's side -------------------------------------------------------------------

    def start(self) -> None:
        """Announce the worker alive and start the thread."""
        self.beat()
        self._thread = threading.Thread(target=self._run, name=f"leases-{self.worker}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread; give back what the worker claimed and never started; leave the set."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.connection.delete(self.alive_key)
        self.reclaim(self.worker)

    def take(self, job_id: str, tasks: Iterable[dict[str, Any]]) -> list[str | bytes]:
        """Lease ``tasks`` of job ``job_id`` and take the job out of the claimed list, atomically.

        When the job was started already, in its preparation (:meth:`start_with`) or as it was
        taken (:meth:`send_start`), the leases set then are taken as they are.

        Returns:
            The lease members, to be removed together with the tasks' reports.
        """
        held = self._started.pop(job_id, None)
        if held is None:
            held = self.hold(tasks)
            claimed, retried = self._start_leases(job_id, [h.lease for h in held])
            self.check_claimed(job_id, claimed, retried)
        members = [h.lease for h in held]
        with self._lock:
            self._held[job_id] = held
        if any(h.heartbeat_seconds for h in held):
            self._wake.set()  # the first heartbeat goes out now, not at the next tick
        return members

    def hold(self, tasks: Iterable[dict[str, Any]]) -> list[HeldTask]:
        """A lease of this worker's for each of ``tasks``."""
        return [
            HeldTask(task, lease_record(task, self.worker, self.lease_seconds), heartbeat_of(task))
            for task in tasks
        ]

    def start_with(self, job_id: str, held: list[HeldTask], recorded: Sequence[EncodableT]) -> None:
        """Run START for ``held`` together with writes recorded for the job's start (worker.bookkeeping).

        The worker's preparation of a job sends its RQ bookkeeping this way, in START's own call,
        instead of a transaction around both; :meth:`take` then takes the leases as they are.
        """
        claimed, retried = self._start_leases(job_id, [h.lease for h in held], recorded)
        self.check_claimed(job_id, claimed, retried)
        self._started[job_id] = held

    def send_start(self, job_id: str, held: list[HeldTask], recorded: Sequence[EncodableT]) -> None:
        """Send START for ``held``, with RQ's bookkeeping of the start, without waiting for it.

        The worker runs the job's functions meanwhile: until START lands the job is still in
        the claimed list, where a reaper finds it if this worker dies, so the job is always
        claimed or leased. :meth:`confirm_start` reads the outcome before anything that must
        follow START (the reports, a hand-back) is sent; :meth:`take` takes the leases as they are.
        """
        members = [h.lease for h in held]
        arguments = [job_id, repr(self.lease_seconds), *recorded, *members]
        try:
            sent = self._start_direct.send(self.start_keys, arguments)
        except OUTAGE_ERRORS as lost:
            sent = SentCall.failed(lost)  # lost on its way: confirm_start sends it again
        self._starting[job_id] = (sent, members, recorded)
        self._started[job_id] = held

    def confirm_start(self, job_id: str) -> None:
        """Read the outcome of a START that :meth:`send_start` sent; send it again if it was lost.

        Raises:
            redis.ConnectionError, redis.TimeoutError: when Redis stays away.
        """
        starting = self._starting.pop(job_id, None)
        if starting is None:
            return
        sent, members, recorded = starting
        try:
            claimed, retried = int(sent.reply()), False
        except (*OUTAGE_ERRORS, ResponseError):
            try:
                claimed, retried = self._start_leases(job_id, members, recorded)
            except ResponseError as refused:
                # A key START writes holds something else (the leases zset, an RQ key): the
                # functions ran all the same, and their reports, which carry their results, go
                # out; the job is not given back to run again.
                log.error("job %s: Redis refused its START (%s); its reports go out anyway", job_id, refused)
                return
        self.check_claimed(job_id, claimed, retried)

    @staticmethod
    def check_claimed(job_id: str, claimed: int, retried: bool) -> None:
        """Say so when START found the job given back by a reaper (start_tasks.lua's reply)."""
        if claimed == 1 or retried:
            return
        if claimed == 0:
            log.warning(
                "job %s was given back while this worker looked dead; it runs here, off the queue", job_id
            )
        else:
            log.warning(
                "job %s was given back while this worker looked dead, and another worker took it: both run"
                " it, and each task takes the first outcome reported",
                job_id,
            )

    def _start_leases(
        self, job_id: str, members: list[str | bytes], recorded: Sequence[EncodableT] = NO_COMMANDS
    ) -> tuple[int, bool]:
        """Run START, again while the connection is lost; whether the job was claimed, whether retried.

        Until START runs, the job is only claimed, and nothing would ever give it back: this
        worker stays alive. Running it twice is harmless: the second finds the job gone from
        the claimed list (a lost reply) and only sets the same leases again.

        Raises:
            redis.ConnectionError, redis.TimeoutError: when Redis stays away; the work loop
                then starts over and gives back what this worker claimed.
        """

        def start() -> int:
            arguments = [job_id, repr(self.lease_seconds), *recorded, *members]
            return int(self._start(keys=self.start_keys, args=arguments))

        return retried_through_outage(start, START_ATTEMPTS, f"starting job {job_id}")

    def release(self, job_id: str) -> None:
        """Stop renewing the job's leases (its reports removed them); forget a START still unconfirmed."""
        self._starting.pop(job_id, None)
        with self._lock:
            self._held.pop(job_id, None)

    # -- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.tick())
            self._wake.clear()
            if self._stop.is_set():
                return
            self.renew()

    def renew(self) -> None:
        """One tick of the thread: renew liveness and leases, and reap dead workers when due."""
        try:
            self.beat()
            if self._renewals_failing:
                log.warning("renewing leases works again")
                self._renewals_failing = False
                # What kept this worker from renewing (Redis away, or refusing writes) may have
                # kept every worker from it: each gets a lease's time to renew before it counts
                # as dead, instead of having the jobs it is about to start given back.
                self._reaped_at = self.clock() + self.lease_seconds / 2
            if self.clock() - self._reaped_at >= self.lease_seconds / 2:
                self._reaped_at = self.clock()
                self.reap()
        except OUTAGE_ERRORS as exc:
            # The next tick tries again; a lease outlives a few missed ticks. One line per
            # outage: a full Redis refuses every tick until it is given room.
            if not self._renewals_failing:
                log.warning("renewing leases failed (%s); trying again every tick", exc)
            self._renewals_failing = True
        except Exception:
            log.warning("renewing leases failed", exc_info=True)

    def tick(self) -> float:
        """How long the thread may sleep: a third of the lease or of the shortest heartbeat."""
        with self._lock:
            beats = [h.heartbeat_seconds for held in self._held.values() for h in held if h.heartbeat_seconds]
        return min([self.lease_seconds, *beats]) / 3

    def mark_alive(self) -> None:
        """Renew the worker's liveness key alone.

        Raises:
            redis.ConnectionError, redis.TimeoutError, redis.exceptions.OutOfMemoryError, ...:
                while Redis is away or refuses writes (OUTAGE_ERRORS).
        """
        self.connection.set(self.alive_key, self.worker, px=self.lease_milliseconds)

    @property
    def lease_milliseconds(self) -> int:
        return max(1, int(self.lease_seconds * 1000))

    def beat(self) -> None:
        """Renew liveness and every held lease; send the heartbeats that are due; one pipeline."""
        now = self.clock()
        with self._lock:
            held = [h for tasks in self._held.values() for h in tasks]
        pipe = self.connection.pipeline(transaction=False)
        pipe.set(self.alive_key, self.worker, px=self.lease_milliseconds)
        pipe.sadd(self.workers_key, self.worker)
        if held:
            leases = [h.lease for h in held]
            self._renew(keys=[self.keys.leases], args=[repr(self.lease_seconds), *leases], client=pipe)
        for h in held:
            if h.heartbeat_seconds and now - h.beaten_at >= h.heartbeat_seconds / 3:
                beat = {"type": "TaskHeartbeat", "execution": h.task["execution"], "token": h.task["token"]}
                pipe.xadd(self.keys.events, {EVENT_FIELD: json.dumps(beat, separators=(",", ":"))})
                h.beaten_at = now
        pipe.execute()

    def reap(self) -> int:
        """Give back the claimed, unstarted jobs of every worker whose liveness key expired."""
        members = self.connection.smembers(self.workers_key)
        names = [n.decode() if isinstance(n, bytes) else n for n in members]
        others = [n for n in names if n != self.worker]
        if not others:
            return 0
        pipe = self.connection.pipeline(transaction=False)
        for name in others:
            pipe.exists(self.keys.alive(name))
        moved = 0
        for name, alive in zip(others, pipe.execute(), strict=True):
            if not alive:
                moved += max(0, self.reclaim(name))
        return moved

    def give_back_unstarted(self) -> int:
        """Give back this worker's claimed jobs; only for a work loop that starts afresh.

        A dequeue whose reply a lost connection swallowed leaves its job claimed by a worker
        that never saw it, and that worker stays alive, so nobody else would give it back.
        """
        claimed = self.keys.claimed(self.worker)
        moved = int(self._give_back(keys=[claimed, self.keys.task_queue]))
        if moved > 0:
            log.warning("gave back %d job(s) this worker dequeued and never started", moved)
        return moved

    def reclaim(self, worker: str) -> int:
        """Move ``worker``'s claimed jobs back to the head of the task queue, if it is not alive."""
        keys = [self.workers_key, self.keys.alive(worker), self.keys.claimed(worker)]
        moved = int(self._reclaim(keys=[*keys, self.keys.task_queue], args=[worker]))
        if moved > 0:
            log.warning("gave back %d job(s) that worker %s dequeued and never started", moved, worker)
        return moved


def heartbeat_of(task: dict[str, Any]) -> float | None:
    """The task's heartbeat interval, or None when its state asks for none."""
    seconds = task.get("heartbeat_seconds")
    return float(seconds) if isinstance(seconds, int | float) and seconds > 0 else None
