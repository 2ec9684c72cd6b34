"""redstep beside its peers, in one run on one Redis: the same 3-step flow on each.

The flow is the dragon pipeline's shape, validate -> add -> notify, and every system's last
step PUBLISHes the end of its execution, which is when the driver stops the clock:

* redstep: the DragonPipeline state machine through N orchestrators and W worker processes
  (bench/pipeline.py's own measure);
* RQ 2.x: a ``depends_on`` chain of three jobs, W SimpleWorker processes (bench/rq_chain.py);
* Celery: a ``chain`` of three tasks, W ``--pool solo`` worker processes (bench/celery_chain.py);
* Dramatiq: a ``pipeline`` of three actors, one ``dramatiq`` command with W processes of
  8 threads (bench/dramatiq_chain.py).

Each system in turn gets the Redis database flushed, its workers started and awaited, a warm-up
of 20 executions, then the full load (``--records`` executions sent at once; executions/s from
the first send to the last end) and ``--single`` executions one at a time (each sent once the
one before ended; send to end). Redis commands per execution are counted over the full load
(``CONFIG RESETSTAT`` / ``INFO commandstats``; the driver's own sends count, its polling not).

    python bench/peers.py [--records 2000] [--workers 2] [--rounds 1] [--skip celery,dramatiq]

With ``--rounds R`` the systems take turns R times, so a spell of other work on a shared
machine slows one round of one system rather than the figure: the table shows each system's
median throughput, and percentiles over every round's one-at-a-time samples.

Celery and Dramatiq come with the ``bench`` extra: ``pip install -e '.[bench]'``.
``--redis-url`` points at a Redis the benchmark may FLUSHDB: never one holding data you keep.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import signal
import statistics
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pipeline
import redis
from chains import URL_VARIABLE, stop_groups

PEERS = {"rq": "RQ chain", "celery": "Celery chain", "dramatiq": "Dramatiq pipeline"}
WARM_UP = 20


def run_peer(name: str, url: str, args: argparse.Namespace, log: Path) -> dict[str, Any]:
    """Run one peer's chain (``celery`` or ``dramatiq``) under full load, then one at a time."""
    os.environ[URL_VARIABLE] = url  # read when the peer's module is imported, here and in its workers
    module = importlib.import_module(f"{name}_chain")
    client = redis.Redis.from_url(url)
    client.flushdb()
    workers = module.start_workers(url, args.workers, log)
    try:
        module.wait_for_workers(client, args.workers)
        chain = module.Chain(client)
        run = uuid.uuid4().hex[:8]
        chain.run_one_at_a_time([pipeline.dragon(run + "w", i) for i in range(WARM_UP)])
        client.config_resetstat()
        before, server_before = pipeline.command_stats(client), pipeline.redis_cpu(client)
        loaded = chain.run_load([pipeline.dragon(run, i) for i in range(args.records)])
        delta = pipeline.command_delta(before, pipeline.command_stats(client))
        delta["info"] = delta.get("info", 0) - 1
        redis_cpu = pipeline.redis_cpu(client) - server_before
        single = chain.run_one_at_a_time([pipeline.dragon(run + "s", i) for i in range(args.single)])
    finally:
        stop_groups(workers)
        client.close()
    return {
        "executions": loaded.executions,
        "throughput": loaded.throughput,
        "single": single.latencies,
        "commands": delta,
        "cpu": [[], [], [redis_cpu]],
    }


def run(args: argparse.Namespace, skip: set[str]) -> dict[str, dict[str, Any]]:
    """Every system in turn on one Redis, ``args.rounds`` times; returns each one's figures by label."""
    # Before minutes of measuring: a peer the bench extra did not install is named now.
    if missing := [name for name in ("celery", "dramatiq") if name not in skip and not find_spec(name)]:
        raise SystemExit(
            f"{' and '.join(missing)} not installed: pip install -e '.[bench]', or --skip {','.join(missing)}"
        )
    args.rq_executions = args.records  # the same record count for every system
    rounds: dict[str, list[dict[str, Any]]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="redstep-peers-") as scratch,
        pipeline.redis_at(args.redis_url) as url,
    ):
        log = Path(scratch) / "processes.log"
        try:
            for _ in range(getattr(args, "rounds", 1)):
                for label, result in run_round(url, args, skip, log):
                    rounds.setdefault(label, []).append(result)
        except Exception:
            print(log.read_text()[-4000:] if log.exists() else "", file=sys.stderr)
            raise
        server_version = redis.Redis.from_url(url).info("server")["redis_version"]
    results = {label: merge(runs) for label, runs in rounds.items()}
    report(args, results, server_version)
    return results


def run_round(
    url: str, args: argparse.Namespace, skip: set[str], log: Path
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each system once, redstep first; each one's figures under its label as it finishes."""
    yield "redstep", pipeline.run_redstep(url, args, log)
    if "rq" not in skip:
        yield PEERS["rq"], pipeline.run_rq(url, args, log)
    for name in ("celery", "dramatiq"):
        if name not in skip:
            yield PEERS[name], run_peer(name, url, args, log)


def merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One system's rounds as one result.

    Throughput is the median round's; the one-at-a-time samples of every round are pooled;
    commands and Redis CPU are summed over every execution of every round.
    """
    commands: Counter[str] = Counter()
    for result in runs:
        commands.update(result["commands"])
    return {
        "done": min(result["executions"] for result in runs),
        "executions": sum(result["executions"] for result in runs),
        "throughputs": [result["throughput"] for result in runs],
        "throughput": statistics.median(result["throughput"] for result in runs),
        "single": [seconds for result in runs for seconds in result["single"]],
        "commands": dict(commands),
        "redis_cpu": sum(result["cpu"][2][0] for result in runs),
    }


def quantile(seconds: list[float], cut: int) -> float | None:
    """The ``cut``-th percentile in milliseconds, or None with too few samples."""
    if len(seconds) < 2:
        return None
    return statistics.quantiles(seconds, n=100, method="inclusive")[cut - 1] * 1000


def versions() -> str:
    found = []
    for package in ("rq", "celery", "dramatiq", "redis", "hiredis"):
        try:
            found.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{package} absent")
    return ", ".join(found)


def report(args: argparse.Namespace, results: dict[str, dict[str, Any]], server_version: str) -> None:
    """One table: throughput, one-at-a-time p50/p99, commands, and each figure's ratio to redstep."""
    ours = results["redstep"]
    our_p50, our_p99 = quantile(ours["single"], 50), quantile(ours["single"], 99)
    rounds = getattr(args, "rounds", 1)
    print(
        f"\n{args.orchestrators} orchestrator(s) for redstep, {args.workers} worker process(es) each,"
        f" {args.records} executions under load, {args.single} one at a time, {rounds} round(s),"
        f" {os.cpu_count()} CPUs"
    )
    print(f"redis-server {server_version}; {versions()}")
    print("ratios: redstep's throughput / the system's, the system's latency / redstep's (>1: redstep ahead)")
    header = (
        f"{'system':<18} {'done':>6} {'exec/s':>8} {'ratio':>6} {'p50 ms':>8} {'ratio':>6}"
        f" {'p99 ms':>8} {'ratio':>6} {'cmds/exec':>10} {'redis CPU ms/exec':>18}"
    )
    print(header)
    print("-" * len(header))
    for label, result in results.items():
        p50, p99 = quantile(result["single"], 50), quantile(result["single"], 99)
        executions = max(result["executions"], 1)
        print(
            f"{label:<18} {result['done']:>6} {result['throughput']:>8.0f}"
            f" {ratio(ours['throughput'], result['throughput']):>6}"
            f" {number(p50):>8} {ratio(p50, our_p50):>6} {number(p99):>8} {ratio(p99, our_p99):>6}"
            f" {sum(result['commands'].values()) / executions:>10.1f}"
            f" {1000 * result['redis_cpu'] / executions:>18.3f}"
        )
    if rounds > 1:
        print("\nexec/s of each round (the table shows the median; latencies pool every round's samples):")
        for label, result in results.items():
            print(f"  {label:<18} " + " ".join(f"{value:.0f}" for value in result["throughputs"]))


def ratio(numerator: float | None, denominator: float | None) -> str:
    if not numerator or not denominator:
        return "-"
    return f"{numerator / denominator:.2f}"


def number(milliseconds: float | None) -> str:
    return "-" if milliseconds is None else f"{milliseconds:.2f}"


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, run every system, print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=2000, help="executions under full load, each system")
    parser.add_argument("--workers", type=int, default=2, help="worker processes, each system")
    parser.add_argument("--orchestrators", type=int, default=1, help="redstep orchestrator processes")
    parser.add_argument("--single", type=int, default=200, help="executions one at a time, each system")
    parser.add_argument(
        "--rounds", type=int, default=1, help="times every system runs, taking turns (a noisy machine)"
    )
    parser.add_argument(
        "--skip", default="", help=f"comma-separated peers to leave out, of: {', '.join(PEERS)}"
    )
    parser.add_argument("--redis-url", default=None, help="a Redis the benchmark may FLUSHDB")
    args = parser.parse_args(argv)
    skip = {name.strip() for name in args.skip.split(",") if name.strip()}
    if unknown := skip - set(PEERS):
        parser.error(f"--skip: unknown peer(s) {', '.join(sorted(unknown))}; known: {', '.join(PEERS)}")
    # A SIGTERM (a timeout, a stopped job) unwinds like Ctrl-C, so no worker outlives the run.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    run(args, skip)


if __name__ == "__main__":
    main()
