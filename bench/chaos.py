"""The long chaos run: records flow while a random orchestrator or worker is SIGKILLed every second.

Run: ``python bench/chaos.py [--records 2000] [--kill-interval 1.0]``. It starts a private
redis-server, 2 orchestrators, 3 workers and a subscriber, and prints records, kills, lease
recoveries, lost, duplicated and time to drain. Exit status 1 when a guarantee broke.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.runtime.server import RedisServer
from tests.chaos import run_chaos


def main(argv: list[str] | None = None) -> int:
    """Run the chaos run once and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--kill-interval", type=float, default=1.0)
    parser.add_argument("--produce-per-second", type=float, default=100.0)
    parser.add_argument("--lease-seconds", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with RedisServer() as server, tempfile.TemporaryDirectory() as work:
        report = run_chaos(
            server.url,
            Path(work),
            records=args.records,
            kill_interval=args.kill_interval,
            produce_per_second=args.produce_per_second,
            lease_seconds=args.lease_seconds,
            seed=args.seed,
            timeout=1800,
        )
    print(report.figures())
    for problem in report.problems[:20]:
        print(f"  {problem}")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
