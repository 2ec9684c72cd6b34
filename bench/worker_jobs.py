"""What one task job costs a worker: microseconds, round trips and commands, in one process.

Writes ``--jobs`` one-task jobs the way the orchestrators write them (``rq_job_fields``, a
ValidateDragon task each) onto a private Redis, then lets one TaskWorker, with leases, run them
all in burst mode in this process, timed by the wall clock. Round trips are the requests its
connections sent (each redis-py ``send_packed_command``, a pipeline's included); commands are
the Redis commands run for them, Lua's inner calls included (``INFO commandstats``). Nothing
else runs on the Redis, so the figures are a worker's own, with no orchestrator waking it.

    python bench/worker_jobs.py [--jobs 3000] [--rounds 3] [--stages] [--single 300]

``--stages`` also prints where a job's time goes, from timestamps taken at the seams of the
worker's path (the wrappers that take them add about a microsecond each). ``--single N`` then
sends N more jobs one at a time, each when the last one's report is in (a thread of this process
sends and waits; the worker waits for each job as it does in a quiet stack), and prints their
latency from the job's push to its report read and, with ``--stages``, where it went.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from functools import partial
from typing import Any

import redis
from redis.connection import AbstractConnection

from orchestrator.protocol.jobs import rq_job_fields
from orchestrator.protocol.keys import RQ_QUEUES, SharedKeys
from orchestrator.runtime.server import RedisServer
from orchestrator.settings import Settings
from worker import entry
from worker.claiming import ClaimingQueue
from worker.leases import WorkerLeases
from worker.process import task_worker
from worker.registry import default_registry

PREFIX = "bench"


class RequestCounter:
    """Counts the requests every redis-py connection in this process sends, while installed."""

    def __init__(self) -> None:
        self.sent = 0
        self._original = AbstractConnection.send_packed_command

    def __enter__(self) -> RequestCounter:
        original = self._original
        counter = self

        def counted(connection: AbstractConnection, command: Any, check_health: bool = True) -> None:
            counter.sent += 1
            original(connection, command, check_health)

        AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
        return self

    def __exit__(self, *_: object) -> None:
        AbstractConnection.send_packed_command = self._original  # type: ignore[method-assign]


# The seams a task job passes, in order, and the stage that ends at each.
SEAMS = [
    ("claim sent", ""),
    ("claimed", "BLMOVE + peek_claimed.lua round trip (job and hash)"),
    ("start sent", "claimed -> START sent (decoded, start recorded)"),
    ("carry_out", "START sent -> carry_out begins (RQ's layers)"),
    ("function", "carry_out -> function begins"),
    ("function ended", "function runs (one HEXISTS)"),
    ("start confirmed", "function ends -> START's reply read"),
    ("report sent", "START's reply read -> append_reports.lua called"),
    ("reported", "append_reports.lua round trip"),
    ("next claim", "reported -> next BLMOVE sent (RQ's end of job)"),
]


class StageTimer:
    """Timestamps at the seams of each job's path through the worker, while installed."""

    def __init__(self) -> None:
        self.jobs: list[dict[str, float]] = []
        self._current: dict[str, float] = {}

    def note(self, seam: str) -> None:
        at = time.perf_counter()
        if seam == "next claim":  # the end of one job's path, the start of the next one's
            if self._current:
                self._current[seam] = at
                self.jobs.append(self._current)
            self._current = {"claim sent": at}
            return
        self._current[seam] = at

    @contextmanager
    def installed(self) -> Iterator[StageTimer]:
        patched: list[tuple[Any, str, Any]] = []

        def wrap(owner: Any, name: str, before: str | None, after: str | None, raw: bool = False) -> None:
            original = owner.__dict__[name] if raw else getattr(owner, name)
            bound = isinstance(original, classmethod)
            function: Callable[..., Any] = original.__func__ if bound else original

            def timed(*args: Any, **kwargs: Any) -> Any:
                if before:
                    self.note(before)
                result = function(*args, **kwargs)
                if after:
                    self.note(after)
                return result

            replacement = classmethod(timed) if isinstance(original, classmethod) else timed
            patched.append((owner, name, original))
            setattr(owner, name, replacement)

        wrap(ClaimingQueue, "move_and_peek", "next claim", "claimed", raw=True)
        wrap(WorkerLeases, "send_start", None, "start sent")
        wrap(WorkerLeases, "confirm_start", None, "start confirmed")
        wrap(entry, "carry_out", "carry_out", None)
        wrap(entry, "publish_reports", "report sent", "reported")
        function = default_registry.lookup("ValidateDragon")
        assert function is not None
        default_registry.register("ValidateDragon", partial(self._run, function))
        try:
            yield self
        finally:
            default_registry.register("ValidateDragon", function)
            for owner, name, original in reversed(patched):
                setattr(owner, name, original)

    def _run(self, function: Callable[[Any, Any], Any], event: Any, context: Any) -> Any:
        self.note("function")
        try:
            return function(event, context)
        finally:
            self.note("function ended")

    def medians(self) -> dict[str, float]:
        """Each stage's median over the jobs (microseconds)."""
        complete = [job for job in self.jobs if all(seam in job for seam, _ in SEAMS)]
        stages: dict[str, float] = {}
        for (previous, _), (seam, label) in itertools.pairwise(SEAMS):
            stages[label] = statistics.median((job[seam] - job[previous]) * 1e6 for job in complete)
        return stages


def enqueue(client: redis.Redis, keys: SharedKeys, jobs: int, run: int) -> None:
    """``jobs`` one-task jobs, as the orchestrators write them, in one pipeline."""
    pipe = client.pipeline(transaction=False)
    for n in range(jobs):
        task = {
            "execution": f"r{run}-e{n}",
            "token": f"r{run}-t{n}",
            "function": "ValidateDragon",
            "function_arn": "arn:aws:lambda:us-east-1:000000000000:function:ValidateDragon",
            "payload": {"dragon_name_str": f"Dragon {run}-{n}"},
            "attempt": 0,
        }
        job_id, fields = rq_job_fields([task], keys)  # type: ignore[list-item]
        pipe.hset(SharedKeys.rq_job(job_id), mapping={name: str(value) for name, value in fields.items()})
        pipe.rpush(keys.task_queue, job_id)
    pipe.sadd(RQ_QUEUES, keys.task_queue)
    pipe.execute()


def commands_run(client: redis.Redis) -> int:
    return sum(int(stats["calls"]) for stats in client.info("commandstats").values())


def one_round(
    client: redis.Redis, settings: Settings, jobs: int, run: int, stages: StageTimer | None = None
) -> dict[str, float]:
    keys = SharedKeys(settings.prefix)
    enqueue(client, keys, jobs, run)
    leases = WorkerLeases(client, settings.prefix, f"bench-{run}", settings.lease_seconds)
    leases.start()
    try:
        worker = task_worker(client, settings, f"bench-{run}", None, leases)
        client.config_resetstat()
        with RequestCounter() as requests, stages.installed() if stages else nullcontext():
            began, cpu_began = time.perf_counter(), time.process_time()
            worker.work(burst=True, logging_level="WARNING")
            seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - cpu_began
        commands = commands_run(client) - 1  # less the INFO that counts them
    finally:
        leases.stop()
    reports = client.xlen(keys.events)
    client.delete(keys.events)
    if reports != jobs:
        raise SystemExit(f"round {run}: {reports} reports for {jobs} jobs")
    return {
        "us_per_job": seconds / jobs * 1e6,
        "cpu_us_per_job": cpu_seconds / jobs * 1e6,
        "jobs_per_second": jobs / seconds,
        "round_trips": requests.sent / jobs,
        "commands": commands / jobs,
    }


def one_at_a_time(
    client: redis.Redis, settings: Settings, jobs: int, stages: StageTimer | None
) -> list[float]:
    """Each job's seconds from its push to its report read, ``jobs`` jobs sent one after another."""
    keys = SharedKeys(settings.prefix)
    latencies: list[float] = []
    sender = redis.Redis(connection_pool=redis.ConnectionPool.from_url(settings.redis_url))

    def send() -> None:
        last = "$"
        for n in range(jobs):
            time.sleep(0.002)  # the worker is waiting for work when the job comes, as in a quiet stack
            began = time.perf_counter()
            enqueue(sender, keys, 1, -n - 1)
            while True:
                [[_, entries]] = sender.xread({keys.events: last}, block=5000) or [[None, []]]
                if entries:
                    last = entries[-1][0]
                    break
            latencies.append(time.perf_counter() - began)

    leases = WorkerLeases(client, settings.prefix, "bench-single", settings.lease_seconds)
    leases.start()
    thread = threading.Thread(target=send, daemon=True)
    try:
        worker = task_worker(client, settings, "bench-single", None, leases)
        with stages.installed() if stages else nullcontext():
            thread.start()
            worker.work(max_jobs=jobs, logging_level="WARNING")
        thread.join(timeout=10)
    finally:
        leases.stop()
        sender.close()
    return latencies


def main(argv: list[str] | None = None) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stages", action="store_true", help="also print where a job's time goes")
    parser.add_argument("--single", type=int, default=0, help="jobs sent one at a time after the rounds")
    args = parser.parse_args(argv)
    single_timer = StageTimer() if args.stages and args.single else None
    single: list[float] = []
    timers = [StageTimer() for _ in range(args.rounds)] if args.stages else [None] * args.rounds
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        settings = Settings(redis_url=server.url, prefix=PREFIX)
        one_round(client, settings, 50, 0)  # warm up: scripts loaded, imports done
        rounds = [
            one_round(client, settings, args.jobs, run, timer)
            for run, timer in zip(range(1, args.rounds + 1), timers, strict=True)
        ]
        if args.single:
            single = one_at_a_time(client, settings, args.single, single_timer)
        client.close()
    best = min(rounds, key=lambda r: r["us_per_job"])
    cpu = sorted(r["cpu_us_per_job"] for r in rounds)[len(rounds) // 2]
    counts = Counter({name: round(value, 2) for name, value in best.items()})
    print(f"{args.jobs} one-task jobs, one TaskWorker with leases, burst mode, best of {args.rounds} rounds")
    print(f"  {counts['us_per_job']:.0f} us per job ({counts['jobs_per_second']:.0f} jobs/s)")
    print(f"  {cpu:.0f} us of this process's CPU per job (median of the rounds; Redis's own is not in it)")
    print(f"  {counts['round_trips']:.2f} round trips per job (the function's own included)")
    print(f"  {counts['commands']:.1f} Redis commands per job (Lua's inner calls included)")
    if args.stages:
        split = [timer.medians() for timer in timers if timer is not None]
        print("where a job's time goes, us, median over the jobs of each round (rounds side by side)")
        for label in split[0]:
            print(f"  {label:52} " + " ".join(f"{medians[label]:7.1f}" for medians in split))
    if single:
        cuts = statistics.quantiles(single, n=100, method="inclusive")
        p50, p95 = cuts[49] * 1e6, cuts[94] * 1e6
        print(f"{len(single)} jobs one at a time: push -> report read p50 {p50:.0f} us, p95 {p95:.0f} us")
    if single_timer is not None:
        print("  where it went, us, median over the jobs (the BLMOVE's includes the wait for the job)")
        for label, value in single_timer.medians().items():
            print(f"  {label:52} {value:7.1f}")


if __name__ == "__main__":
    main()
