"""An inline Map over many items of a function task, spread across worker processes, on the real stack.

Starts a private redis-server, N orchestrator and W worker processes (the workers load
bench/map_functions.py), registers this machine

    Each: Map (INLINE, ItemsPath $.items, MaxConcurrency M) -> Call: Task (a Lambda ARN of
    ``which_worker``, which returns the worker's pid)

and, after a 20-item warm-up, starts ``--executions`` executions that share ``--items`` items
between them, all at once, and waits until every one ends. It prints:

* items/s: items whose task succeeded (LambdaFunctionSucceeded events in the histories), over the time
  from the first execution's startDate to the last one's stopDate;
* how the items spread across the worker processes;
* Redis memory: used_memory before, the peak while the Map ran (INFO used_memory_peak after
  CONFIG RESETSTAT, which resets it) and after;
* the largest execution record seen while the Map ran (MEMORY USAGE, sampled every 0.5 s):
  each commit of the execution rewrites it;
* each execution's status, its error and cause when it did not succeed, its history's length
  and bytes;
* CPU milliseconds per item of the orchestrators, the workers and redis-server.

``--result-bytes N`` makes every item's task return N bytes of text instead (``padded``): the
results together pass the 256 KiB a Map may output long before the last item, and the Map fails
as it joins them, as AWS's does; the largest record shows what the run kept of them meanwhile.

AWS ends a Standard execution whose history reaches 25,000 events. An inline Map iteration of
one Lambda Task writes 7 (MapIterationStarted, TaskStateEntered, LambdaFunctionScheduled,
LambdaFunctionStarted, LambdaFunctionSucceeded, TaskStateExited, MapIterationSucceeded), so one
execution holds some 3,500 items; ``--executions 4`` shares 10,000 items among four executions
under the limit.

    python bench/map_scale.py [--items 10000] [--workers 4] [--executions 1] [--max-concurrency 0]
                              [--result-bytes 0]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pipeline
import redis

from orchestrator.runtime.client import TERMINAL, Client
from orchestrator.runtime.server import RedisServer

MACHINE = "MapScale"
FUNCTIONS = Path(__file__).resolve().with_name("map_functions.py")
RESOURCE = "arn:aws:lambda:us-east-1:000000000000:function:which_worker"
PADDED = "arn:aws:lambda:us-east-1:000000000000:function:padded"
# A task's success event: a Lambda function ARN's, as AWS records it, or an integration's.
SUCCEEDED = {"LambdaFunctionSucceeded", "TaskSucceeded"}


def definition(max_concurrency: int, result_bytes: int = 0) -> dict[str, Any]:
    """The Map machine: every item of ``$.items`` through one Task (``padded`` with ``result_bytes``)."""
    call: dict[str, Any] = {"Type": "Task", "Resource": RESOURCE, "End": True}
    if result_bytes:
        call = {"Type": "Task", "Resource": PADDED, "Parameters": {"bytes": result_bytes}, "End": True}
    return {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": max_concurrency,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "Call",
                    "States": {"Call": call},
                },
                "End": True,
            }
        },
    }


def shares(items: int, executions: int) -> list[list[int]]:
    """``items`` item numbers dealt out to ``executions`` inputs as evenly as they go."""
    return [list(range(start, items, executions)) for start in range(executions)]


def wait_all(api: Client, names: list[str], timeout: float, redis_client: redis.Redis) -> dict[str, Any]:
    """Every execution once it ended (or as it stands at the timeout), the highest used_memory seen
    and the largest execution record seen (what each commit of a running Map rewrites)."""
    deadline = time.monotonic() + timeout
    described: dict[str, Any] = {}
    highest = largest_record = 0
    while True:
        highest = max(highest, int(redis_client.info("memory")["used_memory"]))
        records = (key_size(redis_client, api.keys.execution(name)) for name in names)
        largest_record = max(largest_record, *records)
        described = api.describe_many(names)
        if all(d["status"] in TERMINAL for d in described.values()) and len(described) == len(names):
            break
        if time.monotonic() > deadline:
            print(f"timed out after {timeout:.0f} s; figures below are as things stood", file=sys.stderr)
            break
        time.sleep(0.5)
    return {"described": described, "highest": highest, "largest_record": largest_record}


def task_outputs(api: Client, name: str) -> tuple[int, list[Any]]:
    """The history's length and the output of every task's success event in it.

    Stored events are flat (``{"type": ..., "output": <the value>}``); redstep serve nests them
    as GetExecutionHistory does.
    """
    events = api.history(name)
    outputs = [event.get("output") for event in events if event["type"] in SUCCEEDED]
    return len(events), outputs


def key_size(redis_client: redis.Redis, key: str) -> int:
    """Bytes Redis spends on one key (MEMORY USAGE, every element counted)."""
    return int(redis_client.memory_usage(key, samples=0) or 0)


def run(args: argparse.Namespace, log: Path) -> dict[str, Any]:
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        stack = pipeline.Stack(server.url, "bench", args.orchestrators, args.workers, log, [FUNCTIONS])
        stack.start(client)
        try:
            api = Client(client, stack.settings)
            api.register_machine(MACHINE, definition(args.max_concurrency, args.result_bytes))
            warm = api.start_execution(MACHINE, {"items": list(range(20))})
            api.wait(warm, timeout=120, poll_seconds=0.2)
            client.config_resetstat()  # also resets used_memory_peak
            before = int(client.info("memory")["used_memory"])
            cpu_before, redis_before = stack.cpu(), pipeline.redis_cpu(client)
            names = [
                api.start_execution(MACHINE, {"items": share})
                for share in shares(args.items, args.executions)
            ]
            waited = wait_all(api, names, args.timeout, client)
            cpu_after, redis_after = stack.cpu(), pipeline.redis_cpu(client)
            memory = client.info("memory")
            histories = {name: task_outputs(api, name) for name in names}
            histories_bytes = {name: key_size(client, api.keys.history(name)) for name in names}
        finally:
            stack.stop()
            client.close()
    described = waited["described"]
    return {
        "described": described,
        "histories": histories,
        "histories_bytes": histories_bytes,
        "largest_record": waited["largest_record"],
        "memory": (before, int(memory["used_memory_peak"]), waited["highest"], int(memory["used_memory"])),
        "cpu": (
            sum(cpu_after[0]) - sum(cpu_before[0]),
            sum(cpu_after[1]) - sum(cpu_before[1]),
            redis_after - redis_before,
        ),
    }


def report(args: argparse.Namespace, result: dict[str, Any]) -> None:
    described, histories = result["described"], result["histories"]
    outputs = [pid for _, run in histories.values() for pid in run]
    starts = [d["startDate"] for d in described.values() if d.get("startDate")]
    stops = [d["stopDate"] for d in described.values() if d.get("stopDate")]
    seconds = (max(stops) - min(starts)) if stops and starts else 0.0
    before, peak, highest, after = (value / 2**20 for value in result["memory"])
    print(
        f"\ninline Map of {args.items} items over {args.executions} execution(s), MaxConcurrency "
        f"{args.max_concurrency}, {args.orchestrators} orchestrator(s), {args.workers} workers, "
        f"{os.cpu_count()} CPUs"
    )
    print(f"items whose task succeeded: {len(outputs)} of {args.items}")
    rate = f"{len(outputs) / seconds:,.0f}" if seconds > 0 else "-"
    print(f"time, first start to last stop: {seconds:.2f} s -> {rate} items/s")
    spread = Counter(output for output in outputs if isinstance(output, int))  # which_worker's pids
    if spread:
        print("items per worker process: " + ", ".join(f"{count}" for _, count in spread.most_common()))
    print(
        f"Redis used_memory MiB: before {before:.1f}, peak {peak:.1f} (+{peak - before:.1f}),"
        f" highest sampled {highest:.1f}, after {after:.1f}"
    )
    largest = result["largest_record"] / 1024
    print(f"largest execution record seen while running (each commit rewrites it): {largest:,.0f} KiB")
    orchestrators, workers, server = result["cpu"]
    # With no item done, the whole run's CPU: per item it would mean nothing.
    per, divisor = ("per item", len(outputs)) if outputs else ("in all", 1)
    print(
        f"CPU ms {per}: orchestrator(s) {1000 * orchestrators / divisor:.3f},"
        f" workers {1000 * workers / divisor:.3f}, redis-server {1000 * server / divisor:.3f}"
    )
    for name, execution in described.items():
        line = (
            f"  {name}: {execution['status']}, {histories[name][0]} history events"
            f" ({result['histories_bytes'][name] / 1024:,.0f} KiB in Redis)"
        )
        if execution["status"] != "SUCCEEDED":
            line += f"; {execution.get('error')}: {execution.get('cause')}"
        print(line)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, run the Map, print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=10_000, help="items in all, shared among the executions")
    parser.add_argument("--executions", type=int, default=1, help="executions the items are shared among")
    parser.add_argument("--workers", type=int, default=4, help="worker processes")
    parser.add_argument("--orchestrators", type=int, default=1)
    parser.add_argument("--result-bytes", type=int, default=0, help="bytes each item's task returns")
    parser.add_argument(
        "--max-concurrency", type=int, default=0, help="the Map's MaxConcurrency (0: no limit)"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the executions")
    args = parser.parse_args(argv)
    if args.items < 1 or not 1 <= args.executions <= args.items:
        parser.error("--items must be at least 1 and --executions between 1 and --items")
    # A SIGTERM (a timeout, a stopped job) unwinds like Ctrl-C, so no process outlives the run.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    with tempfile.TemporaryDirectory(prefix="redstep-map-") as scratch:
        log = Path(scratch) / "processes.log"
        try:
            result = run(args, log)
        except Exception:
            print(log.read_text()[-4000:] if log.exists() else "", file=sys.stderr)
            raise
        report(args, result)


if __name__ == "__main__":
    main()
