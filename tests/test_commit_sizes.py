"""A commit lands whole or not at all, whatever its size, and one that cannot land fails alone.

Sizes are those that broke commits before: Lua cannot unpack about 8,000 values into one
command, and a script that errors keeps the writes it already made.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from orchestrator.asl.runner import HISTORY_LIMIT_CAUSE, MAX_HISTORY_EVENTS
from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import GROUP, Keys
from orchestrator.runtime.loop import Orchestrator
from orchestrator.runtime.machines import register_shipped_machines
from orchestrator.runtime.retention import Retention
from orchestrator.runtime.sources import send_messages
from orchestrator.runtime.store import CommitRefused, Store
from orchestrator.settings import Settings
from tests.runtime_fixtures import all_finished, dragon, drive

KEYS = Keys("t")
MACHINE = "DragonPipeline"


def wait_map(seconds: int = 1) -> dict:
    """A Wait, then an inline Map of Pass states over the whole input."""
    return {
        "StartAt": "Rest",
        "States": {
            "Rest": {"Type": "Wait", "Seconds": seconds, "Next": "Each"},
            "Each": {
                "Type": "Map",
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "Copy",
                    "States": {"Copy": {"Type": "Pass", "End": True}},
                },
                "End": True,
            },
        },
    }


def pass_chain(length: int) -> dict:
    states: dict = {f"S{i}": {"Type": "Pass", "Next": f"S{i + 1}"} for i in range(length - 1)}
    states[f"S{length - 1}"] = {"Type": "Pass", "End": True}
    return {"StartAt": "S0", "States": states}


def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not {what} after {timeout}s"
        time.sleep(0.05)


def assert_whole(redis_client: redis.Redis, result: dict, status: str = "SUCCEEDED") -> None:
    """``status`` everywhere a user looks: description, full history, status and closed indexes."""
    name, history = result["executionArn"].rsplit(":", 1)[1], result["history"]
    assert result["status"] == status
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
    assert history[0]["type"] == "ExecutionStarted"
    assert history[-1]["type"] == f"Execution{status.title()}"
    assert redis_client.llen(KEYS.history(name)) == len(history)
    assert redis_client.zscore(KEYS.status(status), name) is not None
    assert redis_client.zscore(KEYS.status("RUNNING"), name) is None
    assert redis_client.zscore(KEYS.closed, name) is not None


# -- the scripts themselves ------------------------------------------------------------------


def test_a_commit_of_30000_history_events_lands_whole(redis_client: redis.Redis) -> None:
    store = Store(redis_client, KEYS)
    commit = store.new_commit()
    commit.save_execution({"name": "e1", "status": "RUNNING"}, 1)
    commit.append_history("e1", [{"id": i} for i in range(1, 30_001)])

    assert store.commit(commit) == []

    assert redis_client.llen(KEYS.history("e1")) == 30_000
    assert json.loads(redis_client.lindex(KEYS.history("e1"), -1)) == {"id": 30_000}


def test_a_commit_with_a_score_redis_would_refuse_writes_nothing(redis_client: redis.Redis) -> None:
    store = Store(redis_client, KEYS)
    commit = store.new_commit()
    commit.save_execution({"name": "e1", "status": "RUNNING"}, 1)
    commit.append_history("e1", [{"id": 1}])
    commit.add_timer(float("nan"), {"type": "TimerFired", "execution": "e1", "token": "t"})

    with pytest.raises(CommitRefused, match=r"t:timers: zadd score nan is not a number"):
        store.commit(commit)

    assert redis_client.keys("*") == []


def test_timers_stay_due_when_the_event_stream_holds_another_type(
    redis_client: redis.Redis, settings: Settings
) -> None:
    orchestrator = Orchestrator(redis_client, settings, "o1", clock=lambda: 50.0)
    for i in range(3):
        event = {"type": "TimerFired", "execution": f"e{i}", "token": f"e{i}:1"}
        redis_client.zadd(KEYS.timers, {json.dumps(event): 10.0})
    redis_client.delete(KEYS.events)
    redis_client.set(KEYS.events, "not a stream")

    with pytest.raises(redis.ResponseError, match=r"t:events is a string, not a stream"):
        orchestrator.fire_timers()

    assert redis_client.zcard(KEYS.timers) == 3


def test_the_retention_sweep_removes_nothing_when_an_index_holds_another_type(
    redis_client: redis.Redis, settings: Settings
) -> None:
    for name in ("old1", "old2"):
        redis_client.hset(KEYS.execution(name), "version", 1)
        redis_client.zadd(KEYS.closed, {name: 5.0})
        redis_client.zadd(KEYS.executions, {name: 1.0})
    redis_client.set(KEYS.status("ABORTED"), "not an index")
    retention = Retention(redis_client, settings.model_copy(update={"retention_seconds": 10.0}))

    with pytest.raises(redis.ResponseError, match=r"t:status:ABORTED is a string, not a zset"):
        retention.sweep(now=100.0)

    assert redis_client.zcard(KEYS.closed) == redis_client.zcard(KEYS.executions) == 2
    assert redis_client.exists(KEYS.execution("old1"), KEYS.execution("old2")) == 2


# -- one batch, one execution that cannot commit ---------------------------------------------


def test_one_execution_in_a_batch_of_250_whose_commit_cannot_land_fails_alone(
    redis_client: redis.Redis, settings: Settings
) -> None:
    """Given 250 dragon executions whose task reports wait on the event stream, and one of them
    whose history key someone replaced with a string, when the orchestrator reads them all in
    one batch, then that one alone ends FAILED and the 249 others go on to SUCCEED."""
    register_shipped_machines(redis_client, KEYS)
    client = Client(redis_client, settings)
    names = [client.start_execution(MACHINE, dragon(f"Dragon {i}"), name=f"d{i}") for i in range(250)]
    orchestrator = Orchestrator(redis_client, settings, "o1")
    drive(redis_client, settings, [], lambda c: redis_client.xlen(KEYS.events) == 250, with_worker=True)
    redis_client.delete(KEYS.history("d7"))
    redis_client.set(KEYS.history("d7"), "not a list")

    assert orchestrator.run_once() == 250  # one read, one batch
    drive(redis_client, settings, [orchestrator], lambda c: c.status()["executions"]["RUNNING"] == 0)

    outcomes = {name: client.describe(name) for name in names}
    failed = outcomes.pop("d7")
    assert {o["status"] for o in outcomes.values()} == {"SUCCEEDED"}
    assert failed["status"] == "FAILED"
    assert failed["error"] == "States.Runtime"
    assert failed["cause"] == (
        "the commit of this transition failed: the commit was refused, nothing written: "
        "t:history:{d7} holds the wrong type of value"
    )
    assert redis_client.zscore(KEYS.status("FAILED"), "d7") is not None
    assert redis_client.zscore(KEYS.closed, "d7") is not None
    status = client.status()
    assert status["events"] == {"depth": 0, "pending": 0}
    assert status["malformed"] == 0


def test_a_record_whose_failed_start_cannot_commit_either_stays_queued_and_the_others_start(
    redis_client: redis.Redis, settings: Settings
) -> None:
    register_shipped_machines(redis_client, KEYS)
    redis_client.set(KEYS.history("x"), "not a list")
    redis_client.set(KEYS.status("FAILED"), "not an index")  # so neither can x start FAILED
    send_messages(redis_client, settings, "dragons", [dragon(n) for n in "abxcd"], list("abxcd"))

    Orchestrator(redis_client, settings, "o1").run_once()

    client = Client(redis_client, settings)
    assert {n: (client.describe(n) or {}).get("status") for n in "abxcd"} == {
        "a": "RUNNING", "b": "RUNNING", "x": None, "c": "RUNNING", "d": "RUNNING"
    }  # fmt: skip
    (pending,) = redis_client.xrange(KEYS.queue("dragons"))
    assert pending[1][b"message_id"] == b"x"  # delivered again later, dead-lettered in the end
    assert redis_client.xpending(KEYS.queue("dragons"), GROUP)["pending"] == 1


# -- on the stack: real orchestrator and worker processes ------------------------------------


@pytest.fixture
def stack(subprocess_env: dict[str, str], redis_client: redis.Redis) -> Iterator[dict[str, str]]:
    """An orchestrator and a worker process (the dragon functions) on the test Redis."""
    quiet = {"env": subprocess_env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes = [
        subprocess.Popen([sys.executable, "-m", "producer.cli", "orchestrator"], **quiet),
        subprocess.Popen([sys.executable, "-m", "worker"], **quiet),
    ]
    yield subprocess_env
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            # What this file tests is over; a worker slow to stop on a loaded machine is not its
            # business (tests/test_fault_worker_stop.py is), so it must not outlive the test.
            process.kill()
            process.wait(timeout=30)


def redstep_run(
    tmp_path: Path, env: dict[str, str], definition: dict, input: object, exit_code: int = 0
) -> dict:
    """``redstep run <definition> --input-file <input> --json`` on the stack; its JSON result."""
    machine, items = tmp_path / "machine.json", tmp_path / "input.json"
    machine.write_text(json.dumps(definition))
    items.write_text(json.dumps(input))
    done = subprocess.run(
        [sys.executable, "-m", "producer.cli", "run", str(machine), "--input-file", str(items), "--json"],
        capture_output=True, text=True, env=env, timeout=240,
    )  # fmt: skip
    assert done.returncode == exit_code, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("items", [2_500, 6_000])
def test_an_inline_map_after_a_wait_succeeds_whole_on_the_stack(
    tmp_path: Path, stack: dict[str, str], redis_client: redis.Redis, items: int
) -> None:
    result = redstep_run(tmp_path, stack, wait_map(), list(range(items)))

    assert result["output"] == list(range(items))
    assert_whole(redis_client, result)
    assert len(result["history"]) > 4 * items  # each iteration's start, Pass in and out, end


def test_an_inline_map_past_the_history_limit_fails_whole_on_the_stack(
    tmp_path: Path, stack: dict[str, str], redis_client: redis.Redis
) -> None:
    """10,000 iterations make over 40,000 events: past AWS's 25,000, the execution fails, as on
    AWS, and that failure commits whole (history up to the limit, indexes, the blob)."""
    result = redstep_run(tmp_path, stack, wait_map(), list(range(10_000)), exit_code=1)

    assert (result["error"], result["cause"]) == ("States.Runtime", HISTORY_LIMIT_CAUSE)
    assert_whole(redis_client, result, status="FAILED")
    # "Avoid reaching the history quota" (Developer Guide): event 25,000 is the ExecutionFailed.
    assert len(result["history"]) == MAX_HISTORY_EVENTS
    assert result["history"][-1]["type"] == "ExecutionFailed"


@pytest.mark.parametrize("length", [4_100, 10_000])
def test_a_long_pass_chain_starts_whole_on_the_stack(
    tmp_path: Path, stack: dict[str, str], redis_client: redis.Redis, length: int
) -> None:
    result = redstep_run(tmp_path, stack, pass_chain(length), {"kept": True})

    assert result["output"] == {"kept": True}
    assert_whole(redis_client, result)
    assert len(result["history"]) == 2 * length + 2


def test_big_commits_and_one_that_cannot_land_amid_300_dragons_on_the_stack(
    stack: dict[str, str], redis_client: redis.Redis, settings: Settings
) -> None:
    """Given three 2,500-item Maps waiting, a Map whose history key was replaced while it waits,
    and a record whose execution's history key is taken before it starts, when 300 dragon
    records stream through, then every dragon and every Map SUCCEEDS and the two at fault alone
    end FAILED with States.Runtime; nothing is left RUNNING, pending or moved aside."""
    client = Client(redis_client, settings)
    until(lambda: client.healthy()[0], 60, "healthy")
    client.register_machine("WaitMap", wait_map(seconds=3600))
    maps = [client.start_execution("WaitMap", list(range(2_500)), name=f"map{i}") for i in range(4)]
    redis_client.delete(KEYS.history("map3"))
    redis_client.set(KEYS.history("map3"), "not a list")
    redis_client.set(KEYS.history("taken"), "not a list")
    records = [dragon(f"Dragon {i}") for i in range(300)]
    ids = [f"r{i}" for i in range(300)]
    records.insert(150, dragon("Taken"))
    ids.insert(150, "taken")

    send_messages(redis_client, settings, "dragons", records[:150], ids[:150])
    for timer in redis_client.zrange(KEYS.timers, 0, -1):
        if json.loads(timer)["execution"] in maps:
            redis_client.zadd(KEYS.timers, {timer: 0.0}, xx=True)  # the Map's Wait is over now
    send_messages(redis_client, settings, "dragons", records[150:], ids[150:])
    until(lambda: all_finished(305)(client), 240, "all finished")

    status = client.status()
    assert status["executions"]["SUCCEEDED"] == 300 + 3
    assert status["executions"]["FAILED"] == 2
    for name in ("map3", "taken"):
        failed = client.describe(name)
        assert failed["error"] == "States.Runtime"
        assert f"t:history:{{{name}}} holds the wrong type of value" in failed["cause"]
    for name in maps[:3]:
        history = client.history(name)
        assert history[-1]["type"] == "ExecutionSucceeded"
        assert len(history) > 4 * 2_500
    assert status["events"] == {"depth": 0, "pending": 0}
    assert status["queue"]["pending"] == status["queue"]["dead_letters"] == 0
    assert status["malformed"] == 0
    assert redis_client.xpending(KEYS.queue("dragons"), GROUP)["pending"] == 0
