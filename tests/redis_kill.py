"""Acknowledged records against a redis-server killed with SIGKILL: the experiment the test and bench share.

One round: a fresh redis-server with the compose file's persistence settings, ``redstep produce``
of N records through the real CLI, SIGKILL of redis-server the moment ``produce`` returns, a
restart on the same directory, and the records then found in the source stream.

Under ``appendfsync everysec`` Redis postpones writing its AOF buffer while a background fsync
is still running (up to 2 s) yet answers the clients, so such a round can lose records that
were acknowledged; a busy disk makes that fsync slow, and :class:`DiskWriter` keeps one busy.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from orchestrator.runtime.keys import Keys
from orchestrator.runtime.server import RedisServer

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
PREFIX = "t"
QUEUE = "dragons"


@dataclass(frozen=True)
class Persistence:
    """How a redis-server keeps its data: an append-only file or not, and its fsync policy."""

    appendonly: bool
    appendfsync: str

    def server(self, data_dir: Path, port: int | None = None) -> RedisServer:
        return RedisServer(port, data_dir=data_dir, aof=self.appendonly, appendfsync=self.appendfsync)


def compose_persistence(path: Path = COMPOSE_FILE) -> Persistence:
    """The ``--appendonly`` and ``--appendfsync`` the compose file gives the redis service.

    Raises:
        ValueError: the file does not set both, with what to add.
    """
    text = path.read_text()
    found = {}
    for option in ("appendonly", "appendfsync"):
        match = re.search(rf"^\s*- --{option}\s*\n\s*- \"?([a-z]+)\"?\s*$", text, re.MULTILINE)
        if not match:
            raise ValueError(
                f"{path}: the redis command sets no --{option}; add '- --{option}' and its value"
            )
        found[option] = match.group(1)
    return Persistence(appendonly=found["appendonly"] == "yes", appendfsync=found["appendfsync"])


def write_records(path: Path, count: int, run: str) -> None:
    """``count`` valid dragon records, each with its own name, as NDJSON."""
    lines = (
        json.dumps(
            {
                "dragon_name_str": f"Durable {run}-{index}",
                "description_str": "Kept through a kill -9.",
                "family_str": "red",
                "location_city_str": "Seattle",
                "location_state_str": "WA",
                "location_country_str": "USA",
                "location_neighborhood_str": "Fremont",
            }
        )
        for index in range(count)
    )
    path.write_text("\n".join(lines) + "\n")


@dataclass(frozen=True)
class Round:
    """What one round acknowledged and what the restarted server still had."""

    acknowledged: list[str]
    found: set[str]

    @property
    def lost(self) -> list[str]:
        return [message_id for message_id in self.acknowledged if message_id not in self.found]


def produce_then_kill(persistence: Persistence, records: Path, data_dir: Path) -> Round:
    """One round on a fresh server in ``data_dir``; see the module's docstring."""
    server = persistence.server(data_dir).start()
    restarted: RedisServer | None = None
    try:
        wait_for_the_next_second(server.url)
        acknowledged = produce_and_kill_on_reply(server, records)
        # A large AOF takes a while to load on a busy machine; the server answers LOADING until then.
        restarted = persistence.server(data_dir, server.port).start(timeout=120)
        return Round(acknowledged, stored_message_ids(restarted.url))
    finally:
        server.stop()
        if restarted:
            restarted.stop()


def wait_for_the_next_second(url: str, timeout: float = 30) -> None:
    """Wait until the server's clock enters a new second.

    Redis starts at most one background fsync per second of its clock, and the one it started
    on start-up falls in the first; past it, produce's first write starts one, and the writes
    that follow while it runs are the ones ``everysec`` holds back.
    """
    client = redis.Redis.from_url(url)
    try:
        started, _ = client.time()
        deadline = time.monotonic() + timeout
        while client.time()[0] == started:
            if time.monotonic() > deadline:
                raise AssertionError(f"the clock of the redis-server at {url} stood still for {timeout}s")
            time.sleep(0.01)
    finally:
        client.close()


def produce_and_kill_on_reply(server: RedisServer, records: Path) -> list[str]:
    """``redstep produce --json``, and SIGKILL of the server as soon as it prints the ids it stored."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("REDSTEP_")}
    env.update(REDIS_URL=server.url, REDSTEP_PREFIX=PREFIX, PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "producer.cli", "produce", "--json", str(records)]
    producer = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert producer.stdout is not None
    printed = ""
    reply: dict[str, Any] | None = None
    for line in producer.stdout:
        printed += line
        with contextlib.suppress(json.JSONDecodeError):
            reply = json.loads(printed)
            break
    # Killed before the producer has even exited: every id it printed had been acknowledged.
    server.kill()
    rest, errors = producer.communicate(timeout=300)
    assert producer.returncode == 0 and reply is not None, f"produce failed:\n{printed}{rest}\n{errors}"
    return list(reply["message_ids"])


def stored_message_ids(url: str) -> set[str]:
    """The message ids of every record in the source stream."""
    client = redis.Redis.from_url(url)
    try:
        entries = client.xrange(Keys(PREFIX).queue(QUEUE))
    finally:
        client.close()
    return {fields[b"message_id"].decode() for _, fields in entries}


class DiskWriter:
    """A thread that keeps the disk under ``directory`` busy: it writes and fsyncs a big file.

    The file goes round in place (``size_mib``), so the disk fills no further; each fsync
    flushes ``block_mib`` of fresh data, long enough to hold up Redis's own fsync behind it.
    """

    def __init__(self, directory: Path, block_mib: int = 16, size_mib: int = 512) -> None:
        self.path = directory / "disk-writer.bin"
        self.block = os.urandom(block_mib * 2**20)
        self.blocks_per_file = max(1, size_mib // block_mib)
        self.fsyncs = 0
        self._first_fsync = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._write, name="disk-writer", daemon=True)

    def _write(self) -> None:
        with self.path.open("wb") as sink:
            while not self._stop.is_set():
                if self.fsyncs % self.blocks_per_file == 0:
                    # Blocks given back and allocated again: ext4 then makes every journal
                    # commit, and so Redis's fsync too, wait for this file's data.
                    sink.seek(0)
                    sink.truncate()
                sink.write(self.block)
                sink.flush()
                os.fsync(sink.fileno())
                self.fsyncs += 1
                self._first_fsync.set()

    def __enter__(self) -> DiskWriter:
        self._thread.start()
        if not self._first_fsync.wait(timeout=120):
            raise RuntimeError(f"the disk writer made no fsync of {self.path} within 120 s")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=120)
        self.path.unlink(missing_ok=True)
