"""What Redis's fsync policy costs the dragon pipeline: throughput and one-at-a-time latency per policy.

Runs the redstep half of ``bench/pipeline.py`` (N orchestrators, W workers, the full-load and
one-at-a-time measurements) on a fresh private redis-server per policy: no append-only file,
then ``appendonly yes`` with ``appendfsync everysec`` and with ``always``. The policies take
turns, round after round, so a change in the machine's load falls on all of them alike; the
figures of one run compare, those of different runs do not.

    python bench/persistence.py [--policies off everysec always] [--rounds 3] [--records 3000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline import percentiles, run_redstep

from orchestrator.runtime.server import APPENDFSYNC_POLICIES, RedisServer

NO_AOF = "off"


def server_for(policy: str, data_dir: Path) -> RedisServer:
    """A private redis-server keeping its files in ``data_dir`` (a real disk) under ``policy``."""
    if policy == NO_AOF:
        return RedisServer(data_dir=data_dir)
    return RedisServer(data_dir=data_dir, aof=True, appendfsync=policy)


def run_policy(policy: str, args: argparse.Namespace, work: Path, number: int) -> dict[str, Any]:
    data = work / f"{policy}-{number}"
    data.mkdir()
    with server_for(policy, data) as server:
        result = run_redstep(server.url, args, work / "processes.log")
        result["aof_delayed_fsync"] = delayed_fsyncs(server.url)
    return result


def delayed_fsyncs(url: str) -> int:
    """How often the server wrote its AOF without waiting any longer for a slow fsync (everysec)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.info("persistence").get("aof_delayed_fsync", 0))
    finally:
        client.close()


def report(args: argparse.Namespace, results: dict[str, list[dict[str, Any]]]) -> None:
    print(
        f"\n{args.orchestrators} orchestrator(s), {args.workers} worker(s), {os.cpu_count()} CPUs; ", end=""
    )
    print(f"{args.records} records under full load, {args.single} one at a time, {args.rounds} round(s)")
    print(f"{'policy':>9}  {'round':>5}  {'exec/s':>7}  {'one at a time p50 / p95 / p99 ms':>34}", end="")
    print("  delayed fsyncs")
    for policy, rounds in results.items():
        for number, result in enumerate(rounds, 1):
            single = percentiles(result["single"])
            figures = f"{result['throughput']:>7.0f}  {single:>34}  {result['aof_delayed_fsync']}"
            print(f"{policy:>9}  {number:>5}  {figures}")
    print("\nmedian over the rounds")
    for policy, rounds in results.items():
        throughput = statistics.median(r["throughput"] for r in rounds)
        single = percentiles([seconds for r in rounds for seconds in r["single"]])
        print(
            f"{policy:>9}  {throughput:>7.0f} exec/s   one at a time (all rounds) p50 / p95 / p99 ms {single}"
        )


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, run every policy in turn, print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    choices = [NO_AOF, *APPENDFSYNC_POLICIES]
    parser.add_argument("--policies", nargs="+", choices=choices, default=[NO_AOF, "everysec", "always"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--records", type=int, default=3000, help="records under full load")
    parser.add_argument("--single", type=int, default=200, help="records sent one at a time")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--orchestrators", type=int, default=1)
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the servers keep their files (a real disk)"
    )
    args = parser.parse_args(argv)
    results: dict[str, list[dict[str, Any]]] = {policy: [] for policy in args.policies}
    with tempfile.TemporaryDirectory(prefix="redstep-persistence-", dir=args.dir) as scratch:
        work = Path(scratch)
        try:
            for number in range(args.rounds):
                for policy in args.policies:
                    results[policy].append(run_policy(policy, args, work, number))
                    print(
                        f"{policy} round {number + 1}: {results[policy][-1]['throughput']:.0f} exec/s",
                        flush=True,
                    )
        except Exception:
            log = work / "processes.log"
            print(log.read_text()[-4000:] if log.exists() else "", file=sys.stderr)
            raise
    report(args, results)


if __name__ == "__main__":
    main()
