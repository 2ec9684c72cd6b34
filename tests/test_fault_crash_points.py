"""An orchestrator killed at each point of a transition: after a restart every execution ends exactly once.

``REDSTEP_FAULT_POINT=<point>:<n>`` makes the orchestrator SIGKILL itself the n-th time it
reaches the point (see orchestrator/runtime/faults.py). The commit is one Lua script that
writes the transition, acknowledges its entries, enqueues the next task and publishes the
notification together, so "after enqueuing, before acknowledging" and "before publishing"
are not points of their own: they collapse into before-commit and after-commit.
"""

from __future__ import annotations

import json
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
from orchestrator.runtime.machines import dragon_pipeline_definition
from orchestrator.settings import Settings
from tests.chaos import FAST_RECOVERY, redstep_process, running_workers, stop, wait_until
from tests.doctor_helpers import assert_consistent

RECORDS = 30
SAMPLES = Path(__file__).resolve().parents[1] / "producer" / "data" / "dragons.json"
# The second time, so some work went through first; timers, whose Waits all end about together,
# may fire in a single call, so the first time there.
POINTS = [
    "after-timers:1",
    "after-source-batch:2",
    "after-read-events:2",
    "before-commit:2",
    "after-commit:2",
]


def waiting_pipeline() -> dict:
    """The dragon pipeline with a Wait state first, so timers fire in every execution."""
    definition = json.loads(dragon_pipeline_definition())
    definition["States"]["Pause"] = {"Type": "Wait", "Seconds": 1, "Next": definition["StartAt"]}
    definition["StartAt"] = "Pause"
    return definition


@pytest.fixture
def crash_env(subprocess_env: dict[str, str]) -> dict[str, str]:
    return {**subprocess_env, **FAST_RECOVERY, "REDSTEP_STATE_MACHINE": "WaitingPipeline"}


@pytest.fixture
def workers(crash_env: dict[str, str]) -> Iterator[None]:
    with running_workers(crash_env):
        yield


def dragons(count: int, first: int = 0) -> list[dict]:
    """``count`` sample dragons, each named after its index from ``first`` on."""
    samples = json.loads(SAMPLES.read_text())
    records = []
    for index in range(first, first + count):
        record = dict(samples[index % len(samples)])
        record["dragon_name_str"] = f"{record['dragon_name_str']}-{index}"
        records.append(record)
    return records


def produce(env: dict[str, str], tmp_path: Path, count: int = RECORDS) -> None:
    """``count`` dragons with unique names, through ``redstep produce`` as a user sends them."""
    path = tmp_path / "dragons.json"
    path.write_text(json.dumps(dragons(count)))
    command = [sys.executable, "-m", "producer.cli", "produce", str(path)]
    produced = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert produced.returncode == 0, produced.stderr


def assert_each_execution_ended_exactly_once(
    redis_client: redis.Redis, settings: Settings, count: int = RECORDS, executions_per_record: int = 1
) -> None:
    """Each of the ``count`` produced records ran once, stored its dragon once and was announced once.

    Each record made ``executions_per_record`` executions (a parent and its nested child: 2).
    """
    client, keys = Client(redis_client, settings), Keys(settings.prefix)
    executions = client.list_executions(limit=10 * count * executions_per_record)
    assert len(executions) == count * executions_per_record
    assert Counter(e["status"] for e in executions) == {"SUCCEEDED": count * executions_per_record}
    for execution in executions:
        history = client.history(execution["name"])
        types = Counter(e["type"] for e in history)
        assert types["ExecutionStarted"] == types["ExecutionSucceeded"] == 1
        entered = Counter(e["name"] for e in history if e["type"].endswith("StateEntered"))
        assert set(entered.values()) == {1}, f"{execution['name']} entered a state twice: {entered}"
    assert redis_client.hlen(keys.dragons) == count
    notifications = [
        json.loads(fields[b"message"]) for _, fields in redis_client.xrange(keys.topic_log(settings.topic))
    ]
    names = Counter(n["MessageAttributes"]["dragon_name"]["Value"] for n in notifications)
    assert len(names) == count and set(names.values()) == {1}
    assert {n["Subject"] for n in notifications} == {"Record inserted"}
    status = client.status()
    assert status["queue"]["depth"] == status["queue"]["pending"] == status["queue"]["dead_letters"] == 0
    assert status["events"]["pending"] == 0, status["events"]
    assert status["malformed"] == 0, f"moved aside: {redis_client.xrange(keys.malformed)}"
    assert_consistent(redis_client, settings)


@pytest.mark.parametrize("point", POINTS)
def test_an_orchestrator_killed_at_a_crash_point_leaves_every_execution_to_end_exactly_once(
    point: str, tmp_path: Path, crash_env: dict[str, str], workers: None, redis_client: redis.Redis
) -> None:
    settings = Settings(redis_url=crash_env["REDIS_URL"], prefix=crash_env["REDSTEP_PREFIX"])
    keys = Keys(settings.prefix)
    Client(redis_client, settings).register_machine("WaitingPipeline", waiting_pipeline())
    produce(crash_env, tmp_path)

    killed_at_then_taken_over(crash_env, point, redis_client, keys, RECORDS)

    assert_each_execution_ended_exactly_once(redis_client, settings)


def killed_at_then_taken_over(
    crash_env: dict[str, str], point: str, redis_client: redis.Redis, keys: Keys, executions: int
) -> None:
    """An orchestrator that SIGKILLs itself at ``point``, then another, until ``executions`` ended."""
    doomed = redstep_process({**crash_env, "REDSTEP_FAULT_POINT": point}, "orchestrator")
    try:
        assert doomed.wait(timeout=60) == -signal.SIGKILL, f"the orchestrator never reached {point}"
    finally:
        stop(doomed)
    survivor = redstep_process(crash_env, "orchestrator")
    try:
        done = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
        wait_until(
            lambda: sum(redis_client.zcard(keys.status(s)) for s in done) == executions,
            120,
            f"all {executions} executions to finish after a kill at {point}",
        )
    finally:
        stop(survivor)


def test_an_unknown_fault_point_is_refused_at_start(crash_env: dict[str, str]) -> None:
    process = redstep_process({**crash_env, "REDSTEP_FAULT_POINT": "nowhere"}, "orchestrator")
    try:
        assert process.wait(timeout=60) not in (0, -signal.SIGKILL)
    finally:
        stop(process)
