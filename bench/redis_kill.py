"""What a kill -9 of redis-server loses of the records ``redstep produce`` was told were stored.

Each round starts a fresh redis-server (append-only file on, with the fsync policy given),
produces N records through the real CLI, SIGKILLs the server the moment ``produce`` returns,
restarts it on the same directory and counts the records left in the source stream. With
``--disk-writer`` a thread writes and fsyncs a big file on the same disk the whole time, as
a busy neighbour would.

    python bench/redis_kill.py [--appendfsync everysec always] [--rounds 5] [--records 100] [--disk-writer]

Prints one line per round and a summary per policy; exit status 1 when any acknowledged record
was lost.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.runtime.server import APPENDFSYNC_POLICIES
from tests.redis_kill import DiskWriter, Persistence, produce_then_kill, write_records


def main(argv: list[str] | None = None) -> int:
    """Run the rounds, print what survived."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--appendfsync", nargs="+", choices=APPENDFSYNC_POLICIES, default=["everysec", "always"]
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--records", type=int, default=100)
    parser.add_argument("--disk-writer", action="store_true", help="keep the disk busy with fsyncs")
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the servers keep their files (a real disk)"
    )
    args = parser.parse_args(argv)
    lost_any = False
    with tempfile.TemporaryDirectory(prefix="redstep-kill-", dir=args.dir) as scratch:
        work = Path(scratch)
        busy = DiskWriter(work) if args.disk_writer else contextlib.nullcontext()
        with busy:
            # The policies take turns, so a change in the machine's load falls on both alike.
            totals = {policy: [0, 0, 0] for policy in args.appendfsync}  # acknowledged, lost, rounds lossy
            for number in range(args.rounds):
                for policy in args.appendfsync:
                    records = work / "records.ndjson"
                    write_records(records, args.records, uuid.uuid4().hex[:8])
                    data = work / f"{policy}-{number}"
                    data.mkdir()
                    result = produce_then_kill(Persistence(True, policy), records, data)
                    lost = len(result.lost)
                    kept = len(result.acknowledged) - lost
                    print(f"{policy:>8} round {number + 1}: {kept} of {len(result.acknowledged)} survived")
                    totals[policy][0] += len(result.acknowledged)
                    totals[policy][1] += lost
                    totals[policy][2] += lost > 0
    writer = "on" if args.disk_writer else "off"
    print(f"\n{args.rounds} round(s) of {args.records} record(s), disk writer {writer}")
    for policy, (acknowledged, lost, lossy) in totals.items():
        print(f"{policy:>8}: lost {lost} of {acknowledged} acknowledged; ", end="")
        print(f"{lossy} of {args.rounds} round(s) lost some")
        lost_any = lost_any or lost > 0
    return 1 if lost_any else 0


if __name__ == "__main__":
    sys.exit(main())
