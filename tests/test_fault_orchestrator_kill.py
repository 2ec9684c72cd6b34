"""An orchestrator SIGKILLed in the middle of a run: after a restart every record completes exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import Keys
from orchestrator.settings import Settings
from tests.chaos import FAST_RECOVERY, redstep_process, running_workers, stop, wait_until
from tests.doctor_helpers import assert_consistent

# Records go in waves: the orchestrator is SIGKILLed once KILL_AFTER executions of a wave
# finished, and the last wave is produced after the kill, so the kill lands before the run
# ends. A wave that finished before the test could look (a busy machine) gets another.
WAVE = 100
KILL_AFTER = 10
WAVES = 8
SAMPLES = Path(__file__).resolve().parents[1] / "producer" / "data" / "dragons.json"


@pytest.fixture
def fault_env(subprocess_env: dict[str, str]) -> dict[str, str]:
    return {**subprocess_env, **FAST_RECOVERY}


@pytest.fixture
def workers(fault_env: dict[str, str]) -> Iterator[None]:
    with running_workers(fault_env):
        yield


def unique_dragons(tmp_path: Path, indexes: range) -> Path:
    """A records file of dragons named by ``indexes``."""
    samples = json.loads(SAMPLES.read_text())
    records = []
    for index in indexes:
        record = dict(samples[index % len(samples)])
        record["dragon_name_str"] = f"{record['dragon_name_str']}-{index}"
        records.append(record)
    path = tmp_path / f"dragons-{indexes.start}.json"
    path.write_text(json.dumps(records))
    return path


def produce(env: dict[str, str], tmp_path: Path, indexes: range) -> None:
    command = [sys.executable, "-m", "producer.cli", "produce", str(unique_dragons(tmp_path, indexes))]
    produced = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert produced.returncode == 0, produced.stderr


def test_a_killed_orchestrator_loses_nothing_and_repeats_nothing(
    tmp_path: Path, fault_env: dict[str, str], workers: None, redis_client: redis.Redis
) -> None:
    settings = Settings(redis_url=fault_env["REDIS_URL"], prefix=fault_env["REDSTEP_PREFIX"])
    client, keys = Client(redis_client, settings), Keys(settings.prefix)

    def finished() -> int:
        # The status indexes directly: a cheap poll lets the kill land early in the run.
        terminal = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
        return sum(redis_client.zcard(keys.status(status)) for status in terminal)

    produced = 0

    def produce_wave() -> None:
        nonlocal produced
        produce(fault_env, tmp_path, range(produced, produced + WAVE))
        produced += WAVE

    for _ in range(WAVES):
        # Queued before the orchestrator starts: on a busy machine, the wave could otherwise be
        # over before `redstep produce` has exited and the test could look.
        produce_wave()
        first = redstep_process(fault_env, "orchestrator")
        try:
            target = produced - WAVE + KILL_AFTER
            wait_until(lambda t=target: finished() >= t, 60, f"{target} executions to finish", interval=0.001)
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
        finally:
            stop(first)
        if finished() < produced:
            break  # the kill landed with executions in flight
    else:
        raise AssertionError(f"in {WAVES} waves, every one finished before its orchestrator was killed")
    second = redstep_process(fault_env, "orchestrator")
    try:
        produce_wave()
        wait_until(lambda: finished() == produced, 120, f"all {produced} executions to finish")
    finally:
        stop(second)

    executions = client.list_executions(limit=10 * produced)
    assert len(executions) == produced
    assert Counter(e["status"] for e in executions) == {"SUCCEEDED": produced}
    assert redis_client.hlen(keys.dragons) == produced
    notifications = [
        json.loads(fields[b"message"]) for _, fields in redis_client.xrange(keys.topic_log(settings.topic))
    ]
    names = Counter(n["MessageAttributes"]["dragon_name"]["Value"] for n in notifications)
    assert len(notifications) == produced and set(names.values()) == {1}
    assert {n["Subject"] for n in notifications} == {"Record inserted"}
    for execution in executions:
        entered = Counter(
            e["name"] for e in client.history(execution["name"]) if e["type"].endswith("StateEntered")
        )
        assert set(entered.values()) == {1}, f"{execution['name']} entered a state twice: {entered}"
    status = client.status()
    assert status["queue"]["depth"] == status["queue"]["pending"] == status["queue"]["dead_letters"] == 0
    assert status["events"]["pending"] == 0
    assert_consistent(redis_client, settings)
