"""What one commit of a hundred execution starts costs Redis: the commit script's own time.

Builds each batch the way an orchestrator builds a loaded iteration's starts (the dragon
machine, ``transitions.start`` and ``record``, 100 executions and their two 50-task jobs in one
``Commit``) and applies it with ``Store.commit`` on a private Redis whose indexes already hold
``--indexed`` executions, so that index writes cost what they cost on a server in use. The
time is Redis's own (``INFO commandstats``: the script and every command it runs), not the
round trip; the argument sizes say what travelled.

    python bench/commit_batches.py [--batches 30] [--starts 100] [--indexed 5000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import redis
from pipeline import dragon

from orchestrator.runtime import transitions
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.machines import MachineCache, register_shipped_machines
from orchestrator.runtime.server import RedisServer
from orchestrator.runtime.store import Store
from orchestrator.settings import Settings

PREFIX = "bench"


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


def one_batch(store: Store, machine: object, settings: Settings, batch: int, starts: int) -> tuple[int, int]:
    """Commit ``starts`` new executions in one call; returns (argument bytes, argument count)."""
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
    _, argv = commit.arguments()
    conflicts = store.commit(commit)
    if conflicts:
        raise SystemExit(f"batch {batch} did not apply: {conflicts}")
    return sum(len(str(value)) for value in argv), len(argv)


def script_microseconds(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("usec", 0)) for name in ("evalsha", "eval"))


def main(argv: list[str] | None = None) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--starts", type=int, default=100)
    parser.add_argument("--indexed", type=int, default=5000)
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
        times, sizes = [], []
        for batch in range(1, args.batches + 1):
            client.config_resetstat()
            sizes.append(one_batch(store, machine, settings, batch, args.starts))
            times.append(script_microseconds(client))
        client.close()
    print(f"{args.batches} commits of {args.starts} starts each, indexes of {args.indexed:,} executions")
    print(f"  Redis time per commit: median {statistics.median(times):,.0f} us, best {min(times):,} us")
    print(f"  per start: {statistics.median(times) / args.starts:.1f} us")
    print(f"  arguments per commit: {sizes[-1][1]:,} values, {sizes[-1][0]:,} characters")


if __name__ == "__main__":
    main()
