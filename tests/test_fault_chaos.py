"""Chaos: orchestrators and workers SIGKILLed at random while records flow lose and repeat nothing."""

from __future__ import annotations

from pathlib import Path

from tests.chaos import run_chaos


def test_a_stack_whose_processes_are_killed_at_random_ends_every_record_exactly_once(
    redis_url: str, tmp_path: Path
) -> None:
    # Given 250 records (one in ten repeating an earlier name) flowing through 2 orchestrators
    # and 3 workers, when a random one of them is SIGKILLed and replaced every 0.7 s,
    report = run_chaos(redis_url, tmp_path, records=250, kill_interval=0.7, max_kills=12, timeout=120)

    # then every record ended in one SUCCEEDED execution, heard of once, stored once.
    print(report.figures())
    assert sum(report.kills.values()) >= 3, "the run drained before the kills landed in its middle"
    assert report.problems == []
    assert report.executions == report.records
    assert report.statuses == {"SUCCEEDED": report.records}
    assert report.lost == report.duplicated == 0
