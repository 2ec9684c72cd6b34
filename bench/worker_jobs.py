"""What one task job costs a worker: microseconds, round trips and commands, in one process.

Writes ``--jobs`` one-task jobs the way the orchestrators write them (``rq_job_fields``, a
ValidateDragon task each) onto a private Redis, then lets one TaskWorker, with leases, run them
all in burst mode in this process, timed by the wall clock. Round trips are the requests its
connections sent (each redis-py ``send_packed_command``, a pipeline's included); commands are
the Redis commands run for them, Lua's inner calls included (``INFO commandstats``). Nothing
else runs on the Redis, so the figures are a worker's own, with no orchestrator waking it.

    python bench/worker_jobs.py [--jobs 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from typing import Any

import redis
from redis.connection import AbstractConnection

from orchestrator.protocol.jobs import rq_job_fields
from orchestrator.protocol.keys import RQ_QUEUES, SharedKeys
from orchestrator.runtime.server import RedisServer
from orchestrator.settings import Settings
from worker.leases import WorkerLeases
from worker.process import task_worker

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


def one_round(client: redis.Redis, settings: Settings, jobs: int, run: int) -> dict[str, float]:
    keys = SharedKeys(settings.prefix)
    enqueue(client, keys, jobs, run)
    leases = WorkerLeases(client, settings.prefix, f"bench-{run}", settings.lease_seconds)
    leases.start()
    try:
        worker = task_worker(client, settings, f"bench-{run}", None, leases)
        client.config_resetstat()
        with RequestCounter() as requests:
            began = time.perf_counter()
            worker.work(burst=True, logging_level="WARNING")
            seconds = time.perf_counter() - began
        commands = commands_run(client) - 1  # less the INFO that counts them
    finally:
        leases.stop()
    reports = client.xlen(keys.events)
    client.delete(keys.events)
    if reports != jobs:
        raise SystemExit(f"round {run}: {reports} reports for {jobs} jobs")
    return {
        "us_per_job": seconds / jobs * 1e6,
        "jobs_per_second": jobs / seconds,
        "round_trips": requests.sent / jobs,
        "commands": commands / jobs,
    }


def main(argv: list[str] | None = None) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        settings = Settings(redis_url=server.url, prefix=PREFIX)
        one_round(client, settings, 50, 0)  # warm up: scripts loaded, imports done
        rounds = [one_round(client, settings, args.jobs, run) for run in range(1, args.rounds + 1)]
        client.close()
    best = min(rounds, key=lambda r: r["us_per_job"])
    counts = Counter({name: round(value, 2) for name, value in best.items()})
    print(f"{args.jobs} one-task jobs, one TaskWorker with leases, burst mode, best of {args.rounds} rounds")
    print(f"  {counts['us_per_job']:.0f} us per job ({counts['jobs_per_second']:.0f} jobs/s)")
    print(f"  {counts['round_trips']:.2f} round trips per job (the function's own included)")
    print(f"  {counts['commands']:.1f} Redis commands per job (Lua's inner calls included)")


if __name__ == "__main__":
    main()
