"""The hand-off floor: the dragon flow's hops between processes, with no framework around them.

What one dragon costs before any of redstep's own work, on this machine, in this hour: the
same processes handing the same messages through the same Redis in the same order, each doing
only what the hop needs. A driver XADDs a record to a source stream; an orchestrator blocked
on XREADGROUP over the source and event streams answers each entry with one small Lua call
(ack the entry, write the execution, push the next job, or PUBLISH the outcome after the last
task); two workers blocked on BLMOVE take a job, run the function's one HEXISTS, and report
with one small Lua call (XADD the event, drop the claim); the driver waits for the outcome on
pub/sub. That is redstep's critical path (bench/pipeline.py's hops) hop for hop: three
commits, two tasks, one notification.

    python bench/handoff_floor.py [--single 1000] [--redis-url URL]

bench/pipeline.py runs it in the same run as redstep's one-at-a-time latency and prints both:
the difference is what redstep's Python and Lua add to the hand-offs.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import time
from pathlib import Path

import redis

from orchestrator.runtime.server import RedisServer

SOURCE, EVENTS, QUEUE, CHANNEL, GROUP = "floor:source", "floor:events", "floor:queue", "floor:outcomes", "g"
TASKS = 2  # ValidateDragon, AddDragon
WARM_UP = 100

LUA = Path(__file__).resolve().parent / "lua"


def orchestrator(url: str) -> None:
    """Answer every source entry and every report with one commit: the next task, or the outcome."""
    client = redis.Redis.from_url(url)
    commit = client.script_load((LUA / "handoff_floor_commit.lua").read_text())
    while True:
        reply = client.xreadgroup(GROUP, "o", {EVENTS: ">", SOURCE: ">"}, count=10, block=1000)
        for stream, entries in reply or []:
            for entry_id, fields in entries:
                if stream.decode() == SOURCE:
                    name, step = fields[b"record"].decode(), 0
                else:
                    event = json.loads(fields[b"event"])
                    name, step = event["name"], event["step"] + 1
                done = "1" if step == TASKS else "0"
                keys = (stream, f"floor:execution:{name}", QUEUE, CHANNEL)
                execution = json.dumps({"name": name, "step": step})
                client.evalsha(commit, 4, *keys, entry_id, execution, execution, done)


def worker(url: str, name: str) -> None:
    """Take each job, run its function's one command, report its outcome."""
    client = redis.Redis.from_url(url)
    report = client.script_load((LUA / "handoff_floor_report.lua").read_text())
    claimed = f"floor:claimed:{name}"
    while True:
        job = client.blmove(QUEUE, claimed, 1, "LEFT", "RIGHT")
        if job is None:
            continue
        task = json.loads(job)
        client.hexists("floor:dragons", task["name"])
        client.evalsha(report, 2, EVENTS, claimed, job, job)


def one_at_a_time(url: str, single: int, workers: int = 2) -> list[float]:
    """Each of ``single`` records' send -> outcome time, each sent once the last one's outcome arrived."""
    client = redis.Redis.from_url(url)
    for stream in (SOURCE, EVENTS):
        client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    processes = [multiprocessing.Process(target=orchestrator, args=(url,), daemon=True)]
    for index in range(workers):
        processes.append(multiprocessing.Process(target=worker, args=(url, str(index)), daemon=True))
    for process in processes:
        process.start()
    subscriber = client.pubsub(ignore_subscribe_messages=True)
    subscriber.subscribe(CHANNEL)
    latencies = []
    try:
        for index in range(WARM_UP + single):
            sent = time.perf_counter()
            client.xadd(SOURCE, {"record": f"dragon-{index}"})
            while subscriber.get_message(timeout=5.0) is None:
                if not all(process.is_alive() for process in processes):
                    raise RuntimeError("a floor process died")
            if index >= WARM_UP:
                latencies.append(time.perf_counter() - sent)
    finally:
        for process in processes:
            process.terminate()
            process.join()
        subscriber.close()
        client.delete(SOURCE, EVENTS, QUEUE)
        client.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--single", type=int, default=1000, help="records sent one at a time")
    parser.add_argument("--redis-url", default=None, help="a Redis the benchmark may write floor:* keys to")
    args = parser.parse_args()
    if args.redis_url:
        latencies = one_at_a_time(args.redis_url, args.single)
    else:
        with RedisServer() as server:
            latencies = one_at_a_time(server.url, args.single)
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    p50, p95, p99 = (1000 * cuts[q - 1] for q in (50, 95, 99))
    print(f"hand-off floor, one at a time, {args.single} records:", end=" ")
    print(f"p50/p95/p99 {p50:.2f} / {p95:.2f} / {p99:.2f} ms")


if __name__ == "__main__":
    main()
