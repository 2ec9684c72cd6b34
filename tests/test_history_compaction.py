"""A finished execution's history is compacted: the same events in a fraction of the memory.

Given executions that finished, when an orchestrator's compaction pass runs past
``history_compact_after_seconds``, then each finished history becomes one compressed string
that every reader (the client behind the API, the dashboard and the CLI) reads exactly as the
list it was; the doctor counts its events; retention removes it; and a redrive turns it back
into a list and appends to it. Histories still running, or finished too recently, stay lists,
and a string some other program wrote there is named, not misread.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
import redis
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from orchestrator.runtime import doctor, histories
from orchestrator.runtime.client import Client
from orchestrator.runtime.history_compaction import MOST_EVENTS, HistoryCompaction
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.loop import Orchestrator
from orchestrator.runtime.machines import register_shipped_machines
from orchestrator.runtime.retention import Retention
from orchestrator.settings import Settings
from tests.retention_fixtures import HOUR, Clock
from tests.runtime_fixtures import all_finished, dragon, drive

KEYS = Keys("t")
DRAGONS = "DragonPipeline"
BROKEN = {"StartAt": "Boom", "States": {"Boom": {"Type": "Fail", "Error": "Broken", "Cause": "on purpose"}}}
REDRIVEN_BROKEN = ["ExecutionRedriven", "FailStateEntered", "ExecutionFailed"]
WAITING = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 30 * 86_400, "End": True}}}


def at_once(settings: Settings) -> Settings:
    return settings.model_copy(update={"history_compact_after_seconds": 0.0})


def compact_all(redis_client: redis.Redis, settings: Settings, clock: Clock | None = None) -> int:
    """Passes until one finds nothing more to do; how many histories they compacted."""
    compaction = HistoryCompaction(redis_client, settings, clock=clock, batch=7)
    total = 0
    while True:
        compacted, full = compaction.compact(compaction.clock())
        total += compacted
        if not full:
            return total


def run_dragons(redis_client: redis.Redis, settings: Settings, count: int) -> tuple[Client, list[str]]:
    register_shipped_machines(redis_client, KEYS)
    orchestrator = Orchestrator(redis_client, settings, "o1")
    client = Client(redis_client, settings)
    names = [client.start_execution(DRAGONS, dragon(f"Dragon {i}")) for i in range(count)]
    drive(redis_client, settings, [orchestrator], all_finished(count))
    return client, names


def started(redis_client: redis.Redis, settings: Settings, name: str) -> None:
    """Run an orchestrator until execution ``name`` has begun its history."""
    orchestrator = Orchestrator(redis_client, settings, "o1")
    drive(
        redis_client, settings, [orchestrator], lambda client: client.history(name) != [], with_worker=False
    )


def key_type(redis_client: redis.Redis, name: str) -> str:
    return redis_client.type(KEYS.history(name)).decode()


def test_compacted_histories_read_as_they_did_in_a_fraction_of_the_memory(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client, names = run_dragons(redis_client, settings, 30)
    before = {name: client.history(name) for name in names}
    memory_before = sum(redis_client.memory_usage(KEYS.history(n), samples=0) for n in names)

    assert compact_all(redis_client, at_once(settings)) == 30

    assert {key_type(redis_client, name) for name in names} == {"string"}
    for name in names:
        events = before[name]
        assert client.history(name) == events
        assert client.history_length(name) == len(events)
        for start, stop in [(0, 0), (3, 7), (-5, -1), (len(events) - 2, len(events) + 10), (9, 2)]:
            assert client.history_range(name, start, stop) == histories.lrange_slice(events, start, stop)
    memory_after = sum(redis_client.memory_usage(KEYS.history(n), samples=0) for n in names)
    assert memory_after < memory_before / 4
    assert doctor.check(redis_client, settings) == []
    assert compact_all(redis_client, at_once(settings)) == 0  # nothing is compacted twice


def test_the_cli_shows_a_compacted_history_as_it_showed_the_list(
    redis_client: redis.Redis, settings: Settings, subprocess_env: dict[str, str]
) -> None:
    _, [name] = run_dragons(redis_client, settings, 1)

    def shown() -> Any:
        command = [sys.executable, "-m", "producer.cli", "executions", "history", name, "--json"]
        done = subprocess.run(command, env=subprocess_env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    as_a_list = shown()
    compact_all(redis_client, at_once(settings))
    assert key_type(redis_client, name) == "string"
    assert shown() == as_a_list


def test_running_and_recently_finished_executions_keep_their_lists(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client, [finished] = run_dragons(redis_client, settings, 1)
    client.register_machine("Waiting", WAITING)
    waiting = client.start_execution("Waiting", {}, name="waiting")
    started(redis_client, settings, waiting)
    assert client.describe(waiting)["status"] == "RUNNING"

    assert compact_all(redis_client, settings) == 0  # the default waits a minute after the stop
    assert key_type(redis_client, finished) == "list"
    assert compact_all(redis_client, at_once(settings)) == 1
    assert key_type(redis_client, finished) == "string" and key_type(redis_client, waiting) == "list"


def pass_chain(states: int) -> dict[str, Any]:
    """A machine of ``states`` Pass states one after another: 2 + 2 * states history events."""
    chain = {f"P{i}": {"Type": "Pass", "Next": f"P{i + 1}"} for i in range(states)}
    chain[f"P{states - 1}"] = {"Type": "Pass", "End": True}
    return {"StartAt": "P0", "States": chain}


def test_a_history_longer_than_a_page_stays_a_list(redis_client: redis.Redis, settings: Settings) -> None:
    """The API and the dashboard read a long history a page (1,000 events) at a time: a page of
    a list costs what it holds, a page of the compacted form would cost unpacking it all."""
    client = Client(redis_client, settings)
    client.register_machine("Page", pass_chain(MOST_EVENTS // 2 - 1))
    client.register_machine("Longer", pass_chain(MOST_EVENTS // 2))
    page = client.start_execution("Page", {}, name="page")
    longer = client.start_execution("Longer", {}, name="longer")
    orchestrator = Orchestrator(redis_client, settings, "o1")
    drive(redis_client, settings, [orchestrator], all_finished(2), with_worker=False)
    assert (client.history_length(page), client.history_length(longer)) == (MOST_EVENTS, MOST_EVENTS + 2)

    assert compact_all(redis_client, at_once(settings)) == 1

    assert key_type(redis_client, page) == "string" and key_type(redis_client, longer) == "list"
    assert client.history_length(page) == MOST_EVENTS


def failed_and_compacted(
    redis_client: redis.Redis, settings: Settings, name: str
) -> tuple[Client, Orchestrator, str]:
    """An execution of BROKEN called ``name`` that failed and whose history was compacted."""
    client = Client(redis_client, settings)
    client.register_machine("Broken", BROKEN)
    orchestrator = Orchestrator(redis_client, settings, "o1")
    client.start_execution("Broken", {}, name=name)
    drive(redis_client, settings, [orchestrator], all_finished(1), with_worker=False)
    compact_all(redis_client, at_once(settings))
    return client, orchestrator, name


def test_a_redriven_execution_gets_its_list_back_and_its_history_goes_on(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client, orchestrator, name = failed_and_compacted(redis_client, settings, "broken")
    first = client.history(name)
    assert key_type(redis_client, name) == "string"

    client.redrive(name)
    drive(redis_client, settings, [orchestrator], all_finished(1), with_worker=False)

    assert key_type(redis_client, name) == "list"
    history = client.history(name)
    assert history[: len(first)] == first
    assert [event["type"] for event in history[len(first) :]] == REDRIVEN_BROKEN
    assert [event["id"] for event in history] == list(range(1, len(history) + 1))
    assert doctor.check(redis_client, settings) == []
    assert compact_all(redis_client, at_once(settings)) == 1  # finished again: compacted again
    assert client.history(name) == history


def test_a_redrive_overtaken_by_a_compaction_pass_expands_again_and_lands(
    redis_client: redis.Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, orchestrator, name = failed_and_compacted(redis_client, settings, "overtaken")
    expand, overtaken = histories.expand, []

    def expand_then_overtaken(connection: redis.Redis, key: str) -> bool:
        expanded = expand(connection, key)
        if not overtaken:  # an orchestrator's pass lands between the expansion and the commit, once
            overtaken.append(compact_all(redis_client, at_once(settings)))
        return expanded

    monkeypatch.setattr(histories, "expand", expand_then_overtaken)
    client.redrive(name)
    drive(redis_client, settings, [orchestrator], all_finished(1), with_worker=False)

    assert overtaken == [1]
    history = client.history(name)
    types = [event["type"] for event in history]
    assert types.count("ExecutionRedriven") == 1 and types[-3:] == REDRIVEN_BROKEN
    assert [event["id"] for event in history] == list(range(1, len(history) + 1))
    assert doctor.check(redis_client, settings) == []


def test_retention_removes_a_compacted_history(
    redis_client: redis.Redis, hour_retention: Settings, clock: Clock
) -> None:
    client, [name] = run_dragons(redis_client, hour_retention, 1)
    compact_all(redis_client, at_once(hour_retention), clock)
    assert key_type(redis_client, name) == "string"

    clock.offset = HOUR + 60
    Retention(redis_client, hour_retention, clock=clock).sweep(clock())

    assert not redis_client.exists(KEYS.history(name))
    assert client.describe(name) is None and client.history(name) == []


def test_a_history_that_changed_since_it_was_read_is_left_as_it_is(
    redis_client: redis.Redis, settings: Settings
) -> None:
    _, [name] = run_dragons(redis_client, settings, 1)
    events = redis_client.lrange(KEYS.history(name), 0, -1)
    compaction = HistoryCompaction(redis_client, at_once(settings))

    stale = compaction.replace([(name, len(events) - 1, histories.pack(events[:-1]))])

    assert stale == 0 and key_type(redis_client, name) == "list"
    assert compaction.replace([(name, len(events), histories.pack(events))]) == 1


def test_a_string_no_compaction_wrote_is_named_by_readers_and_by_the_doctor(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client, [name] = run_dragons(redis_client, settings, 1)
    redis_client.set(KEYS.history(name), "written by something else")

    with pytest.raises(histories.MalformedHistory, match=r"t:history:\{.*\} holds a string that is not a"):
        client.history(name)
    assert compact_all(redis_client, at_once(settings)) == 0
    [problem] = doctor.check(redis_client, settings)
    assert problem.subject == name and problem.invariant == "history-length"
    assert "not a compacted history" in problem.explanation


def test_a_compacted_history_of_a_running_execution_is_a_problem_the_doctor_names(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client = Client(redis_client, settings)
    client.register_machine("Waiting", WAITING)
    name = client.start_execution("Waiting", {}, name="waiting")
    started(redis_client, settings, name)
    events = redis_client.lrange(KEYS.history(name), 0, -1)
    redis_client.set(KEYS.history(name), histories.pack(events))

    problems = [p for p in doctor.check(redis_client, settings) if p.invariant == "history-length"]
    assert [p.subject for p in problems] == [name]
    assert "is compacted, but the execution is RUNNING" in problems[0].explanation


@hypothesis_settings(max_examples=150, deadline=None)
@given(
    length=st.integers(min_value=0, max_value=12),
    start=st.integers(min_value=-20, max_value=20),
    stop=st.integers(min_value=-20, max_value=20),
)
def test_a_range_of_a_compacted_history_is_what_lrange_gives_of_the_list(
    redis_server: Any, length: int, start: int, stop: int
) -> None:
    client = redis.Redis.from_url(redis_server.url, db=1)
    try:
        client.delete("l")
        items = [str(i).encode() for i in range(length)]
        if items:
            client.rpush("l", *items)
        assert histories.lrange_slice(items, start, stop) == client.lrange("l", start, stop)
    finally:
        client.delete("l")
        client.close()
