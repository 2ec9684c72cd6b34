"""What one commit of a hundred execution starts costs Redis: the commit script's own time.

Builds each batch the way an orchestrator builds a loaded iteration's starts (the dragon
machine, ``transitions.start`` and ``record``, 100 executions and their two 50-task jobs in one
``Commit``) and applies it with ``Store.commit`` on a private Redis whose indexes already hold
``--indexed`` executions, so that index writes cost what they cost on a server in use. The
time is Redis's own (``INFO commandstats``: the script and every command it runs), not the
round trip; the argument sizes say what travelled.

``--worker-scripts`` also times what a worker's scripts cost Redis for each job the batch
enqueued: peek_claimed.lua (the job's hash, read behind the dequeue), start_tasks.lua (its
leases and RQ's bookkeeping of the start) and append_reports.lua (one report per task, its
counts and its leases), with RQ bookkeeping of the shape a worker records (13 commands for a
start, 8 for an end).

    python bench/commit_batches.py [--batches 30] [--starts 100] [--indexed 5000] [--worker-scripts]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import redis
from pipeline import dragon

from orchestrator.protocol.keys import RQ_JOB_PREFIX
from orchestrator.protocol.leases import lease_record
from orchestrator.protocol.scripts import lua_script
from orchestrator.runtime import transitions
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.machines import MachineCache, register_shipped_machines
from orchestrator.runtime.server import RedisServer
from orchestrator.runtime.store import Store
from orchestrator.settings import Settings

PREFIX = "bench"
WORKER = "bench-worker"


def fill_indexes(client: redis.Redis, keys: Keys, machine: str, count: int) -> None:
    """Put ``count`` executions (names only) in every index a start writes, as a server in use has."""
    members = {f"earlier-{n}": float(n) for n in range(count)}
    pipe = client.pipeline(transaction=False)
    pipe.zadd(keys.executions, members)
    pipe.zadd(keys.status("RUNNING"), members)
    for key in client.scan_iter(f"{keys.prefix}:*{machine}*"):
        if client.type(key) == b"zset":
            pipe.zadd(key, members)
    pipe.execute()


def one_batch(
    store: Store, machine: object, settings: Settings, batch: int, starts: int
) -> tuple[int, int, list[str]]:
    """Commit ``starts`` new executions in one call; returns (argument bytes, argument count, job keys)."""
    commit = store.new_commit()
    tasks = []
    now = time.time()
    for n in range(starts):
        name = f"b{batch}-e{n}"
        commit.expect_version(name, 0)
        transition = transitions.start(machine, name, dragon(f"b{batch}", n), now)  # type: ignore[arg-type]
        transitions.record(commit, transition, 0, settings)
        tasks += transition.tasks
    commit.enqueue_tasks(tasks)
    keys, argv = commit.arguments()
    conflicts = store.commit(commit)
    if conflicts:
        raise SystemExit(f"batch {batch} did not apply: {conflicts}")
    jobs = [key for key in keys if key.startswith("rq:job:")]
    return sum(len(str(value)) for value in argv), len(argv), jobs


def start_bookkeeping(job_id: str) -> str:
    """RQ bookkeeping of a job's start, shaped as a worker records it (its words, not its values)."""
    execution, worker, job = f"rq:execution:{job_id}:e1", f"rq:worker:{WORKER}", f"rq:job:{job_id}"
    commands = [
        ["HSET", execution, "id", "e1", "created_at", "1.5", "last_heartbeat", "1.5", "worker_name", WORKER],
        ["EXPIRE", execution, "960"],
        ["ZADD", f"rq:executions:{job_id}", "2000000000", "e1"],
        ["EXPIRE", f"rq:executions:{job_id}", "1020"],
        ["ZADD", f"rq:wip:{PREFIX}-tasks", "2000000000", f"{job_id}:e1"],
        ["HSET", worker, "state", "busy"],
        ["HSET", worker, "current_job", job_id],
        ["HSET", worker, "current_job_working_time", "0"],
        ["HSET", worker, "last_heartbeat", "2026-12-06T18:28:32.695678Z"],
        ["EXPIRE", worker, "960"],
        [
            "HSET",
            job,
            "last_heartbeat",
            "2026-12-06T18:28:32.695703Z",
            "status",
            "started",
            "worker_name",
            WORKER,
        ],
        ["PERSIST", job],
        ["LREM", f"rq:queue:{PREFIX}-tasks:intermediate", "1", job_id],
    ]
    return json.dumps(commands)


def end_bookkeeping(job_id: str) -> str:
    """RQ bookkeeping of a job's success, shaped as a worker records it."""
    worker = f"rq:worker:{WORKER}"
    commands = [
        ["HINCRBY", worker, "successful_job_count", "1"],
        ["HINCRBYFLOAT", worker, "total_working_time", "0.000576"],
        ["HDEL", worker, "current_job"],
        ["DEL", f"rq:execution:{job_id}:e1"],
        ["ZREM", f"rq:wip:{PREFIX}-tasks", f"{job_id}:e1"],
        ["ZREM", f"rq:executions:{job_id}", "e1"],
        ["DEL", f"rq:job:{job_id}"],
        ["HSET", worker, "state", "idle"],
    ]
    return json.dumps(commands)


def run_jobs(client: redis.Redis, keys: Keys, job_keys: list[str]) -> dict[str, list[int]]:
    """Each job's scripts as one worker calls them, and each call's Redis usec, by script.

    peek_claimed.lua (the job's hash, read behind the dequeue), start_tasks.lua (its leases and
    RQ's bookkeeping of the start) and append_reports.lua (its reports and the end's bookkeeping).
    """
    peek, start = lua_script(client, "peek_claimed"), lua_script(client, "start_tasks")
    append = lua_script(client, "append_reports")
    spent: dict[str, list[int]] = {"peek_claimed": [], "start_tasks": [], "append_reports": []}
    claimed = keys.claimed(WORKER)
    for job_key in job_keys:
        job_id = job_key.removeprefix("rq:job:")
        client.lrem(keys.task_queue, 1, job_id)
        client.rpush(claimed, job_id)
        client.config_resetstat()
        _, kind, flat = peek(keys=[claimed], args=[RQ_JOB_PREFIX])
        spent["peek_claimed"].append(script_microseconds(client))
        fields = {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}
        if kind != b"hash":
            raise SystemExit(f"peek_claimed.lua found no hash for {job_id}: {kind!r}")
        tasks = json.loads(fields[b"data"])[2][0]
        leases = [lease_record(task, WORKER, 30.0) for task in tasks]
        client.config_resetstat()
        start(keys=[claimed, keys.leases], args=[job_id, "30.0", start_bookkeeping(job_id), *leases])
        spent["start_tasks"].append(script_microseconds(client))
        reports = [json.dumps({"type": "TaskSucceeded", "token": task["token"]}) for task in tasks]
        counts = ["2", '["task_duration_bucket","ValidateDragon","0.005"]', str(len(reports))]
        counts += ['["task_duration_sum_us","ValidateDragon"]', "600"]
        client.config_resetstat()
        append(
            keys=[keys.events, keys.leases, f"{PREFIX}:metrics"],
            args=["event", str(len(reports)), *reports, *counts, end_bookkeeping(job_id), *leases],
        )
        spent["append_reports"].append(script_microseconds(client))
    return spent


def script_microseconds(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("usec", 0)) for name in ("evalsha", "eval"))


def main(argv: list[str] | None = None) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--starts", type=int, default=100)
    parser.add_argument("--indexed", type=int, default=5000)
    parser.add_argument("--worker-scripts", action="store_true", help="also time a worker's scripts")
    args = parser.parse_args(argv)
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        settings = Settings(redis_url=server.url, prefix=PREFIX)
        keys = Keys(PREFIX)
        register_shipped_machines(client, keys)
        machine = MachineCache(client, keys).get(settings.state_machine)
        if machine is None:
            raise SystemExit(f"no machine {settings.state_machine!r} registered")
        store = Store(client, keys)
        one_batch(store, machine, settings, 0, args.starts)  # scripts loaded, per-machine indexes made
        fill_indexes(client, keys, settings.state_machine, args.indexed)
        times: list[int] = []
        sizes: list[tuple[int, int, list[str]]] = []
        worker_scripts: dict[str, list[int]] = {}
        for batch in range(1, args.batches + 1):
            client.config_resetstat()
            sizes.append(one_batch(store, machine, settings, batch, args.starts))
            times.append(script_microseconds(client))
            if args.worker_scripts:
                for name, times_of_job in run_jobs(client, keys, sizes[-1][2]).items():
                    worker_scripts.setdefault(name, []).extend(times_of_job)
        client.close()
    print(f"{args.batches} commits of {args.starts} starts each, indexes of {args.indexed:,} executions")
    print(f"  Redis time per commit: median {statistics.median(times):,.0f} us, best {min(times):,} us")
    print(f"  per start: {statistics.median(times) / args.starts:.1f} us")
    print(f"  arguments per commit: {sizes[-1][1]:,} values, {sizes[-1][0]:,} characters")
    for name, spent in worker_scripts.items():
        if spent:
            print(f"  {name}.lua per job: median {statistics.median(spent):,.0f} us, best {min(spent):,} us")


if __name__ == "__main__":
    main()
