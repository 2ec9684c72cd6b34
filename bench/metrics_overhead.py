"""What counting metrics costs the dragon pipeline: bench/pipeline.py's full load, metrics on and off.

Rounds alternate (on, off, then off, on, ...) on one private redis-server, each with fresh
orchestrator and worker processes started with ``REDSTEP_METRICS=1`` or ``0``, so that drift
in a busy machine's speed falls on both sides alike. Prints each round's executions/s and the
median of each side, and the CPU time the orchestrators, workers and Redis spent per execution
(less swayed than throughput by other work on a shared machine); with metrics on, also what
the counters say, as a check that they counted.

    python bench/metrics_overhead.py [--records 3000] [--rounds 3] [--workers 2] [--orchestrators 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

import redis
from pipeline import Stack, dragon, full_load, one_at_a_time, redis_at, redis_cpu

from orchestrator.protocol.metrics import field, metrics_key
from orchestrator.settings import Settings

ROLES = ("orchestrators", "workers", "redis")


def redis_work(client: redis.Redis) -> tuple[int, int, int]:
    """Commands Redis ran so far (those of scripts included), HINCRBYs, and microseconds in those."""
    stats = client.info("commandstats")
    calls = sum(int(row["calls"]) for row in stats.values())
    hincrby = stats.get("cmdstat_hincrby", {})
    return calls, int(hincrby.get("calls", 0)), int(hincrby.get("usec", 0))


def one_round(url: str, metrics_on: bool, args: argparse.Namespace, log: Path) -> tuple[float, float, int]:
    """Executions/s of one full load, CPU ms per execution, and the starts the counters hold."""
    client = redis.Redis.from_url(url)
    client.flushdb()
    stack = Stack(url, "bench", args.orchestrators, args.workers, log)
    stack.env["REDSTEP_METRICS"] = "1" if metrics_on else "0"
    stack.start(client)
    try:
        run = uuid.uuid4().hex[:8]
        one_at_a_time(client, stack.settings, [dragon(run + "w", i) for i in range(20)])  # warm up
        before = [*map(sum, stack.cpu()), redis_cpu(client)]
        work_before = redis_work(client)
        loaded = full_load(client, stack.settings, [dragon(run, i) for i in range(args.records)])
        roles = [b - a for a, b in zip(before, [*map(sum, stack.cpu()), redis_cpu(client)], strict=True)]
        work = [(b - a) / loaded["executions"] for a, b in zip(work_before, redis_work(client), strict=True)]
        if args.roles:
            print(
                f"  Redis per execution: {work[0]:.1f} commands, of them {work[1]:.2f} HINCRBY"
                f" taking {work[2]:.2f} us",
                flush=True,
            )
            per = " ".join(
                f"{n} {c * 1e3 / loaded['executions']:.3f}" for n, c in zip(ROLES, roles, strict=True)
            )
            print(f"  CPU ms/execution by role: {per}", flush=True)
        cpu = sum(roles)
    finally:
        stack.stop()
    settings: Settings = stack.settings
    started = client.hget(metrics_key(settings.prefix), field("executions_started", settings.state_machine))
    client.close()
    return float(loaded["throughput"]), cpu * 1000 / loaded["executions"], int(started or 0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=3000, help="records under full load, per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each side")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--orchestrators", type=int, default=1)
    parser.add_argument("--redis-url", default=None, help="a Redis the benchmark may FLUSHDB")
    parser.add_argument("--roles", action="store_true", help="also print each round's CPU by role")
    parser.add_argument("--json", action="store_true", help="print only the figures, as JSON")
    args = parser.parse_args(argv)
    figures: dict[str, list[float]] = {"on": [], "off": []}
    cpu: dict[str, list[float]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory(prefix="redstep-bench-") as scratch, redis_at(args.redis_url) as url:
        log = Path(scratch) / "processes.log"
        try:
            for index in range(args.rounds):
                for metrics_on in (True, False) if index % 2 == 0 else (False, True):
                    throughput, cpu_ms, started = one_round(url, metrics_on, args, log)
                    side = "on" if metrics_on else "off"
                    figures[side].append(throughput)
                    cpu[side].append(cpu_ms)
                    if not args.json:
                        counted = f" (counters: {started} executions started)" if metrics_on else ""
                        print(
                            f"round {index + 1} metrics {side:3}: {throughput:8.1f} executions/s"
                            f" {cpu_ms:6.3f} CPU ms/execution{counted}"
                        )
        except Exception:
            print(log.read_text()[-4000:] if log.exists() else "", file=sys.stderr)
            raise
    on, off = statistics.median(figures["on"]), statistics.median(figures["off"])
    change = (on - off) / off * 100
    cpu_on, cpu_off = statistics.median(cpu["on"]), statistics.median(cpu["off"])
    cpu_change = (cpu_on - cpu_off) / cpu_off * 100
    if args.json:
        summary = {"median_on": on, "median_off": off, "change_percent": change, "cpu_ms": cpu}
        print(json.dumps({**figures, **summary, "cpu_change_percent": cpu_change}))
        return
    print(f"median metrics on : {on:8.1f} executions/s {cpu_on:6.3f} CPU ms/execution")
    print(f"median metrics off: {off:8.1f} executions/s {cpu_off:6.3f} CPU ms/execution")
    print(f"with metrics on: throughput {change:+.1f} %, CPU per execution {cpu_change:+.1f} %")


if __name__ == "__main__":
    main()
