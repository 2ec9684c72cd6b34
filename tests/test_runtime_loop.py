"""The orchestrator loop: timers, races between orchestrators, bad input, on a real Redis."""

from __future__ import annotations

import json
import threading
import time

import pytest
import redis

from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import GROUP, Keys
from orchestrator.runtime.loop import Orchestrator, run_orchestrator
from orchestrator.runtime.sources import send_messages
from orchestrator.settings import Settings
from tests.runtime_fixtures import LAMBDA, all_finished, dragon, drive, one_task_machine, queued_tasks
from worker.process import task_worker

KEYS = Keys("t")


@pytest.fixture
def client(redis_client: redis.Redis, settings: Settings) -> Client:
    return Client(redis_client, settings)


def task_events(redis_client: redis.Redis) -> list[dict]:
    """The events the orchestrators would read, without reading them."""
    return [json.loads(fields[b"event"]) for _, fields in redis_client.xrange(KEYS.events)]


def test_due_timers_fire_exactly_once_with_two_orchestrators(
    redis_client: redis.Redis, settings: Settings
) -> None:
    for i in range(300):
        event = {"type": "TimerFired", "execution": f"e{i}", "token": f"e{i}:1"}
        redis_client.zadd(KEYS.timers, {json.dumps(event): 10.0 + i % 2})
    later = {"type": "TimerFired", "execution": "late", "token": "late:1"}
    redis_client.zadd(KEYS.timers, {json.dumps(later): 1e12})
    pair = [Orchestrator(redis_client, settings, f"o{i}", clock=lambda: 50.0) for i in (1, 2)]
    fired: list[int] = []
    threads = [
        threading.Thread(target=lambda o=o: fired.extend(o.fire_timers() for _ in range(5))) for o in pair
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(fired) == 300
    assert sorted(e["execution"] for e in task_events(redis_client)) == sorted(f"e{i}" for i in range(300))
    assert redis_client.zcard(KEYS.timers) == 1


def test_a_wait_state_resumes_when_its_timer_fires(
    redis_client: redis.Redis, settings: Settings, client: Client
) -> None:
    offset = [0.0]
    orchestrator = Orchestrator(redis_client, settings, "o1", clock=lambda: time.time() + offset[0])
    client.register_machine(
        "Waiting", {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": True}}}
    )
    name = client.start_execution("Waiting", {"a": 1})
    orchestrator.run_once()
    assert client.describe(name)["status"] == "RUNNING"

    offset[0] = 61.0
    drive(redis_client, settings, [orchestrator], all_finished(1), with_worker=False)

    assert client.describe(name)["output"] == {"a": 1}
    assert redis_client.zcard(KEYS.timers) == 0  # the timer that fired is gone


def test_an_event_redelivered_to_a_second_orchestrator_is_applied_once(
    redis_client: redis.Redis, settings: Settings, client: Client
) -> None:
    client.register_machine("One", one_task_machine())
    name = client.start_execution("One", {"dragon_name_str": "Puff"})
    (task,) = queued_tasks(redis_client, settings)
    report = {"type": "TaskSucceeded", "execution": name, "token": task["token"], "output": {"ok": 1}}
    redis_client.xadd(KEYS.events, {"event": json.dumps(report)})
    slow = Orchestrator(redis_client, settings, "slow")
    fast = Orchestrator(redis_client, settings, "fast", claim_idle_seconds=0.001)
    slow.intake.last_claim = fast.intake.last_claim = time.time()
    read_by_slow = slow.intake.read_events(None)
    assert len(read_by_slow) == 1

    fast.intake.last_claim = 0.0  # the slow one looks dead: its entry is claimed and applied
    fast.run_once()
    slow.apply_events(read_by_slow)  # and then the slow one wakes up with the same event

    assert client.describe(name)["status"] == "SUCCEEDED"
    types = [event["type"] for event in client.history(name)]
    assert types.count("LambdaFunctionSucceeded") + types.count("TaskSucceeded") == 1
    assert types.count("ExecutionSucceeded") == 1
    assert redis_client.xlen(KEYS.events) == 0


def test_a_transition_that_loses_a_version_race_is_recomputed(
    redis_client: redis.Redis, settings: Settings, client: Client
) -> None:
    client.register_machine("One", one_task_machine())
    name = client.start_execution("One", {})
    (task,) = queued_tasks(redis_client, settings)
    event = {"type": "TaskSucceeded", "execution": name, "token": task["token"], "output": 7}
    redis_client.xadd(KEYS.events, {"event": json.dumps(event)})
    orchestrator = Orchestrator(redis_client, settings, "o1")
    real_send, real_commit, calls = orchestrator.store.send, orchestrator.store.commit, []

    def after_a_rival(real):  # type: ignore[no-untyped-def]
        def call(batch):  # type: ignore[no-untyped-def]
            if not calls:  # someone else commits this execution between our load and our commit
                redis_client.hincrby(KEYS.execution(name), "version", 1)
            calls.append(batch)
            return real(batch)

        return call

    # An iteration sends its commits without waiting (send); a lost race is done again waiting (commit).
    orchestrator.store.send = after_a_rival(real_send)  # type: ignore[method-assign]
    orchestrator.store.commit = after_a_rival(real_commit)  # type: ignore[method-assign]
    orchestrator.run_once()

    assert len(calls) == 2
    assert client.describe(name)["output"] == 7


def test_a_redelivered_message_starts_no_second_execution(
    redis_client: redis.Redis, settings: Settings, client: Client
) -> None:
    quick = settings.model_copy(update={"visibility_timeout_seconds": 0.1, "state_machine": "One"})
    client.register_machine("One", one_task_machine())
    (message_id,) = send_messages(redis_client, quick, "dragons", [{"dragon_name_str": "Puff"}])
    first = Orchestrator(redis_client, quick, "o1")
    stalled = first.source.poll()  # pulled, then this orchestrator stalls past the visibility timeout
    time.sleep(0.15)

    Orchestrator(redis_client, quick, "o2").run_once()
    first.start_executions(stalled)

    assert [e["name"] for e in client.list_executions()] == [message_id]
    assert [e["type"] for e in client.history(message_id)].count("ExecutionStarted") == 1
    assert redis_client.xlen(KEYS.queue("dragons")) == 0


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"event": "{not json"}, "not JSON"),
        ({"other": "x"}, "no 'event' field"),
        ({"event": "[1, 2]"}, "not a JSON object"),
        ({"event": json.dumps({"type": "TaskSucceeded", "token": "x"})}, "execution"),
        ({"event": json.dumps({"type": "Bogus", "execution": "e", "token": "x"})}, "unknown event type"),
        (
            {"event": json.dumps({"type": "TaskSucceeded", "execution": "ghost", "token": "g"})},
            "no execution",
        ),
    ],
)
def test_a_malformed_event_is_moved_aside_with_its_reason(
    redis_client: redis.Redis, settings: Settings, fields: dict, reason: str
) -> None:
    orchestrator = Orchestrator(redis_client, settings, "o1")
    entry_id = redis_client.xadd(KEYS.events, fields).decode()

    orchestrator.run_once()
    orchestrator.run_once()

    ((_, aside),) = redis_client.xrange(KEYS.malformed)
    assert aside[b"id"].decode() == entry_id
    assert reason in aside[b"reason"].decode()
    assert json.loads(aside[b"fields"]) == fields
    assert redis_client.xlen(KEYS.events) == 0
    assert redis_client.xpending(KEYS.events, GROUP)["pending"] == 0


def test_an_unknown_state_machine_fails_the_execution_with_a_clear_error(
    redis_client: redis.Redis, settings: Settings, client: Client
) -> None:
    missing = settings.model_copy(update={"state_machine": "NoSuchMachine"})
    (message_id,) = send_messages(redis_client, missing, "dragons", [{"a": 1}])

    Orchestrator(redis_client, missing, "o1").run_once()

    described = client.describe(message_id)
    assert described["status"] == "FAILED"
    assert described["error"] == "States.Runtime"
    assert "NoSuchMachine" in described["cause"]
    assert [e["type"] for e in client.history(message_id)] == ["ExecutionStarted", "ExecutionFailed"]


def test_a_task_for_a_function_nobody_registered_fails_the_execution(
    redis_client: redis.Redis, settings: Settings, client: Client
) -> None:
    client.register_machine("Lost", one_task_machine("NobodyHasThis"))
    name = client.start_execution("Lost", {})

    drive(redis_client, settings, [Orchestrator(redis_client, settings, "o1")], all_finished(1))

    described = client.describe(name)
    assert described["status"] == "FAILED"
    assert described["error"] == "Lambda.ResourceNotFoundException"
    assert "NobodyHasThis" in described["cause"]


def test_orchestrator_heartbeat_makes_the_stack_healthy(
    redis_client: redis.Redis, settings: Settings, client: Client
) -> None:
    assert client.healthy()[0] is False
    Orchestrator(redis_client, settings, "o1").run_once()
    assert client.healthy() == (True, "Redis reachable; 1 orchestrator(s) alive")


def test_an_execution_whose_commit_redis_refuses_fails_alone_and_its_neighbour_commits(
    redis_client: redis.Redis, settings: Settings, client: Client
) -> None:
    client.register_machine("One", one_task_machine())
    good, bad = client.start_execution("One", {}, name="good"), client.start_execution("One", {}, name="bad")
    for name, task in zip((good, bad), queued_tasks(redis_client, settings), strict=True):
        report = {"type": "TaskSucceeded", "execution": name, "token": task["token"], "output": name}
        redis_client.xadd(KEYS.events, {"event": json.dumps(report)})
    redis_client.set(KEYS.history(bad), "not a list")  # no RPUSH on it can ever succeed

    Orchestrator(redis_client, settings, "o1").run_once()

    assert client.describe(good)["output"] == "good"
    failed = client.describe(bad)
    assert failed["status"] == "FAILED"
    assert failed["error"] == "States.Runtime"
    assert failed["cause"].startswith("the commit of this transition failed")
    assert KEYS.history(bad) in failed["cause"]
    assert redis_client.zscore(KEYS.status("FAILED"), bad) is not None
    assert redis_client.zscore(KEYS.status("RUNNING"), bad) is None
    assert redis_client.zscore(KEYS.closed, bad) is not None
    assert redis_client.get(KEYS.history(bad)) == b"not a list"  # someone else's value, left alone
    assert redis_client.xlen(KEYS.events) == 0
    assert redis_client.xlen(KEYS.malformed) == 0


def test_run_orchestrator_stops_cleanly_when_asked(settings: Settings, redis_client: redis.Redis) -> None:
    stop = threading.Event()
    runner = threading.Thread(target=run_orchestrator, args=(settings, stop, "o1"))
    runner.start()
    client = Client(redis_client, settings)
    deadline = time.monotonic() + 5
    while not client.healthy()[0]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    name = client.start_execution("DragonPipeline", {"dragon_name_str": "Puff"})

    stop.set()
    runner.join(5)

    assert not runner.is_alive()
    assert client.describe(name)["status"] == "RUNNING"  # waiting on a worker that does not run here


def test_orchestrators_that_each_believe_they_are_alone_still_apply_every_step_once(
    redis_client: redis.Redis, settings: Settings, client: Client
) -> None:
    """An orchestrator alone takes the executions it committed last without reading their versions;
    when another commits meanwhile (it started before the first noticed), the commit's version
    check turns the stale copy into a retry, never into a wrong or repeated step."""
    steps = {
        f"Step{i}": {"Type": "Task", "Resource": LAMBDA + "ValidateDragon", "ResultPath": f"$.v{i}"}
        for i in range(4)
    }
    for i in range(3):
        steps[f"Step{i}"]["Next"] = f"Step{i + 1}"
    steps["Step3"]["End"] = True
    client.register_machine("Four", {"StartAt": "Step0", "States": steps})
    names = [client.start_execution("Four", dragon(f"Lonely {i}")) for i in range(5)]
    pair = [Orchestrator(redis_client, settings, f"o{i}") for i in (1, 2)]
    for orchestrator in pair:
        orchestrator.alone = True
        orchestrator.forget_dead_orchestrators_if_due = lambda: None  # type: ignore[method-assign]
    worker = task_worker(redis_client, settings)

    deadline = time.monotonic() + 60
    turn = 0
    while not all_finished(5)(client):
        assert time.monotonic() < deadline, client.status()
        pair[turn % 2].run_once()  # the two take turns, so each finds the other's commits
        turn += 1
        worker.work(burst=True, logging_level="WARNING")

    for name in names:
        assert client.describe(name)["status"] == "SUCCEEDED"
        history = client.history(name)
        entered = [e["name"] for e in history if e["type"] == "TaskStateEntered"]
        assert entered == ["Step0", "Step1", "Step2", "Step3"]
        assert [e["id"] for e in history] == list(range(1, len(history) + 1))
