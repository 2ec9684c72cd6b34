"""``python -m worker``: run one worker process with the settings of the environment."""

from __future__ import annotations

import argparse

from orchestrator.settings import Settings
from worker.running import run_worker


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run a worker."""
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__)
    parser.add_argument("--functions", action="append", default=[], help="a .py file or module to load")
    parser.add_argument("--burst", action="store_true", help="exit once the task queue is empty")
    parser.add_argument("--name", default=None, help="the worker's name in RQ")
    parser.add_argument("--logging-level", default="INFO")
    args = parser.parse_args(argv)
    run_worker(Settings(), args.functions, burst=args.burst, name=args.name, logging_level=args.logging_level)


if __name__ == "__main__":
    main()
