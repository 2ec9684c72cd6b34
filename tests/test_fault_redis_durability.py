"""Acknowledged means durable: a redis-server SIGKILLed as ``redstep produce`` returns keeps every record.

Given a fresh redis-server with exactly the persistence settings of the compose file's redis
service, when ``redstep produce`` (the real CLI) has printed the ids of the records it stored
and redis-server is SIGKILLed right then and restarted on the same directory, then every one
of those records is in the source stream.

The round is repeated, because the loss it guards against is a race: under ``appendfsync
everysec`` Redis answers while it holds back its AOF buffer behind a background fsync still
running (``flushAppendOnlyFile`` in Redis's ``aof.c``), and on this kind of machine such a
round loses records more often than not, more so while another process keeps the disk busy.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.redis_kill import (
    DiskWriter,
    Persistence,
    Round,
    compose_persistence,
    produce_then_kill,
    write_records,
)

# 100 records go out in one pipeline; the first of them starts a background fsync and the rest
# arrive while it runs, which is the window everysec leaves open.
RECORDS = 100
QUIET_ROUNDS = 8
BUSY_DISK_ROUNDS = 4


@pytest.fixture(scope="module")
def persistence() -> Persistence:
    return compose_persistence()


def rounds(persistence: Persistence, work: Path, count: int) -> list[Round]:
    """``count`` rounds, each on a fresh server in a directory of its own, with fresh records."""
    results = []
    for number in range(count):
        records = work / f"records-{number}.ndjson"
        write_records(records, RECORDS, uuid.uuid4().hex[:8])
        data = work / f"redis-{number}"
        data.mkdir()
        results.append(produce_then_kill(persistence, records, data))
    return results


def lost_per_round(results: list[Round]) -> list[str]:
    return [
        f"round {n}: lost {len(r.lost)} of {len(r.acknowledged)}" for n, r in enumerate(results, 1) if r.lost
    ]


def test_the_compose_redis_keeps_an_append_only_file(persistence: Persistence) -> None:
    assert persistence.appendonly, "docker-compose.yml must start redis with --appendonly yes"


@pytest.mark.timeout(600)
def test_every_acknowledged_record_survives_a_kill_9_of_redis_right_after_produce(
    persistence: Persistence, tmp_path: Path
) -> None:
    results = rounds(persistence, tmp_path, QUIET_ROUNDS)

    lost = lost_per_round(results)
    assert all(len(r.acknowledged) == RECORDS for r in results)
    assert not lost, f"appendfsync {persistence.appendfsync}: {'; '.join(lost)}"


@pytest.mark.timeout(600)
def test_every_acknowledged_record_survives_a_kill_9_of_redis_while_the_disk_is_busy(
    persistence: Persistence, tmp_path: Path
) -> None:
    # The writer shares the servers' disk, so Redis's own fsyncs queue up behind its fsyncs.
    with DiskWriter(tmp_path) as writer:
        results = rounds(persistence, tmp_path, BUSY_DISK_ROUNDS)
        fsyncs_meanwhile = writer.fsyncs

    assert fsyncs_meanwhile > 1, "the disk writer stalled: the disk was not kept busy"
    lost = lost_per_round(results)
    assert all(len(r.acknowledged) == RECORDS for r in results)
    assert not lost, f"appendfsync {persistence.appendfsync}: {'; '.join(lost)}"
