"""Redis memory that each finished DragonPipeline execution holds while it is retained.

Starts a private redis-server, one orchestrator and W worker processes (the real stack), runs
N dragon records to their end, then measures:

* ``used_memory`` before and after, divided by N (everything the run left behind);
* ``MEMORY USAGE`` (exact: ``SAMPLES 0``) of every key, grouped by what it is: the execution's
  description, its history, its entries in the indexes, the dragon store, the notification log,
  the RQ leftovers; the first three are what ``REDSTEP_RETENTION_SECONDS`` keeps and removes;
* the histories' bytes as lists of events, and as the orchestrators compact them once their
  executions have finished (``--compact``: the stack compacts at once, and the figures are taken
  after every history was compacted; runtime.history_compaction);
* what a retention of ``--days`` on DragonPipeline alone (``redstep machines retention``)
  keeps at ``--per-day`` executions a day: arithmetic from the figure measured here.

    python bench/retained_memory.py [--records 5000] [--workers 2] [--per-day 100000] [--days 7] [--compact]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import redis

from orchestrator.protocol import json_text
from orchestrator.runtime.histories import history_range, pack
from orchestrator.runtime.keys import STATUSES, Keys
from orchestrator.runtime.server import RedisServer
from orchestrator.runtime.sources import send_messages
from orchestrator.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "bench"
SEND_BATCH = 500
TERMINAL = [status for status in STATUSES if status != "RUNNING"]
# Kept per execution and removed by retention; everything else outlives the execution.
SAMPLES = json.loads((ROOT / "producer" / "data" / "dragons.json").read_text())
RETAINED = ("description (exec hash)", "history", "index entries (zsets)")


def dragon(index: int) -> dict[str, Any]:
    """A record of the sample data set (producer/data/dragons.json), renamed so no two are alike."""
    record = dict(SAMPLES[index % len(SAMPLES)])
    record["dragon_name_str"] = f"{record['dragon_name_str']} {index}"
    return record


def start_stack(url: str, workers: int, log: Path, compact: bool) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "REDIS_URL": url, "REDSTEP_PREFIX": PREFIX, "REDSTEP_LOG_LEVEL": "WARNING"}
    # Compact each history as soon as its execution ends, or (for the lists' figures) never.
    env["REDSTEP_HISTORY_COMPACT_AFTER_SECONDS"] = "0" if compact else "-1"
    sink = log.open("ab")
    commands = [["orchestrator"]] + [["worker"]] * workers
    return [
        subprocess.Popen(
            [sys.executable, "-m", "producer.cli", *c], env=env, cwd=ROOT, stdout=sink, stderr=sink
        )
        for c in commands
    ]


def finished(client: redis.Redis, keys: Keys) -> int:
    pipe = client.pipeline(transaction=False)
    for status in TERMINAL:
        pipe.zcard(keys.status(status))
    return sum(pipe.execute())


def run_records(client: redis.Redis, settings: Settings, first: int, count: int, timeout: float) -> None:
    keys = Keys(PREFIX)
    target = finished(client, keys) + count
    for start in range(first, first + count, SEND_BATCH):
        bodies = [dragon(i) for i in range(start, min(start + SEND_BATCH, first + count))]
        send_messages(client, settings, settings.source_queue, bodies)
    deadline = time.monotonic() + timeout
    while finished(client, keys) < target:
        if time.monotonic() > deadline:
            raise SystemExit(
                f"only {finished(client, keys)} of {target} executions finished in {timeout:.0f}s"
            )
        time.sleep(0.2)
    # Let the last reports and RQ jobs settle before anything is measured.
    while client.llen(f"rq:queue:{keys.task_queue_name}") or client.xlen(keys.events):
        time.sleep(0.2)
    time.sleep(1.0)


def kind_of(key: str, keys: Keys) -> str:
    """What a key holds, in the words of the report."""
    p = keys.prefix
    if key.startswith(f"{p}:exec:"):
        return "description (exec hash)"
    if key.startswith(f"{p}:history:"):
        return "history"
    if key in (keys.executions, keys.closed) or key.startswith(f"{p}:status:"):
        return "index entries (zsets)"
    if key == keys.dragons:
        return "dragon store (hash)"
    if key.startswith(f"{p}:topic-log:"):
        return "notification log (capped stream)"
    if key.startswith("rq:"):
        return "RQ keys"
    return "other (queues, machines, heartbeats)"


def usage_by_kind(client: redis.Redis, keys: Keys) -> tuple[dict[str, int], dict[str, int]]:
    """Bytes and key counts of every key, grouped by :func:`kind_of`."""
    names = [k.decode() for k in client.scan_iter(count=1000)]
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.memory_usage(name, samples=0)
    sizes, counts = defaultdict(int), defaultdict(int)
    for name, size in zip(names, pipe.execute(), strict=True):
        kind = kind_of(name, keys)
        sizes[kind] += size or 0
        counts[kind] += 1
    return dict(sizes), dict(counts)


def history_sizes(client: redis.Redis, keys: Keys, sample: int) -> tuple[float, float, float, float]:
    """Mean events, bytes of a history's JSON (as one array), of its compacted form, and blob bytes."""
    names = [n.decode() for n in client.zrange(keys.executions, 0, sample - 1)]
    raw = packed = blob = count = 0
    for name in names:
        events = [
            json_text.dumps(event).encode() for event in history_range(client, keys.history(name), 0, -1)
        ]
        count += len(events)
        raw += len(b"[" + b",".join(events) + b"]")
        packed += len(pack(events))
        blob += len(client.hget(keys.execution(name), "execution") or b"")
    return count / len(names), raw / len(names), packed / len(names), blob / len(names)


def wait_compacted(client: redis.Redis, keys: Keys, timeout: float) -> None:
    """Wait until no finished execution's history is a list any more."""
    deadline = time.monotonic() + timeout
    while True:
        names = [n.decode() for n in client.zrange(keys.closed, 0, -1)]
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.type(keys.history(name))
        lists = sum(1 for kind in pipe.execute() if kind == b"list")
        if not lists:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"{lists} histories still lists after {timeout:.0f}s")
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--per-day", type=int, default=100_000, help="DragonPipeline executions a day")
    parser.add_argument("--days", type=float, default=7.0, help="a retention for DragonPipeline alone")
    parser.add_argument("--compact", action="store_true", help="measure after the histories were compacted")
    args = parser.parse_args()

    keys = Keys(PREFIX)
    with RedisServer() as server, tempfile.TemporaryDirectory() as logs:
        client = redis.Redis.from_url(server.url)
        settings = Settings(redis_url=server.url, prefix=PREFIX)
        stack = start_stack(server.url, args.workers, Path(logs) / "stack.log", args.compact)
        try:
            run_records(client, settings, 0, 20, args.timeout)  # warm up: machines, groups, RQ registries
            before = int(client.info("memory")["used_memory"])
            sizes_before, _ = usage_by_kind(client, keys)
            started = time.monotonic()
            run_records(client, settings, 20, args.records, args.timeout)
            elapsed = time.monotonic() - started
            if args.compact:
                wait_compacted(client, keys, args.timeout)
            after = int(client.info("memory")["used_memory"])
            sizes_after, counts = usage_by_kind(client, keys)
            events, history_raw, history_packed, blob = history_sizes(client, keys, min(500, args.records))
            version = client.info("server")["redis_version"]
        finally:
            for process in stack:
                process.kill()
                process.wait()

    n = args.records
    print(
        f"redis {version}; {n} DragonPipeline executions finished in {elapsed:.1f}s ({args.workers} workers)"
    )
    print(f"used_memory: {before / 2**20:.1f} MiB before, {after / 2**20:.1f} MiB after: "
          f"{(after - before) / n:,.0f} bytes per execution")  # fmt: skip
    print("MEMORY USAGE by kind, growth per execution (keys after the run):")
    retained = 0
    for kind in sorted(set(sizes_after) | set(sizes_before)):
        grown = (sizes_after.get(kind, 0) - sizes_before.get(kind, 0)) / n
        retained += grown if kind in RETAINED else 0
        print(f"  {kind:<38} {grown:>8,.0f} B   ({counts.get(kind, 0)} keys)")
    print(f"  {'retained per execution (first three)':<38} {retained:>8,.0f} B")
    per_million = retained * 1_000_000 / 2**30
    print(f"projection: {per_million:.1f} GiB per million retained executions (retention keeps them 90 days)")
    form = "compacted strings" if args.compact else "lists of events (compaction off)"
    print(f"histories kept as {form}: {events:.0f} events, {history_raw:,.0f} B of JSON per execution, "
          f"{history_packed:,.0f} B compacted ({history_packed / history_raw:.0%}); "
          f"description blob {blob:,.0f} B")  # fmt: skip
    kept = args.per_day * args.days
    used = (after - before) / n
    print(f"redstep machines retention DragonPipeline {args.days * 86_400:.0f}: at {args.per_day:,} a day "
          f"it keeps {kept:,.0f} executions, {kept * retained / 1e9:.1f} GB retained "
          f"({kept * used / 1e9:.1f} GB of used_memory); the 90-day default would keep "
          f"{args.per_day * 90 * used / 1e9:.1f} GB")  # fmt: skip
    print(json.dumps({"records": n, "bytes_per_execution_used_memory": round((after - before) / n),
                      "bytes_per_execution_retained": round(retained)}))  # fmt: skip


if __name__ == "__main__":
    main()
