"""A running execution's page reads only the history events added since its last view.

Each execution here loops through Pass and Choice states at its start (no orchestrator runs)
and then waits in a Wait state, so it stays RUNNING; its history then grows as a running loop
would grow it, by events appended here. Every view is compared with one a fresh reader builds
from the whole history.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from orchestrator.api.config import ApiSettings
from orchestrator.api.server import build_app
from orchestrator.dashboard import history_reads
from orchestrator.dashboard.auth import Sessions
from orchestrator.dashboard.history_reads import HistoryReading, HistoryReadings
from orchestrator.dashboard.pages import Pages
from orchestrator.dashboard.rendering import Renderer
from orchestrator.runtime.client import Client
from orchestrator.settings import Settings

LOOPS = {  # a round of Count and Again is four events; Hold then waits, and goes on to Count again
    "StartAt": "Count",
    "States": {
        "Count": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.n, 1)"}, "Next": "Again"},
        "Again": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.n", "NumericLessThan": "${rounds}", "Next": "Count"}],
            "Default": "Hold",
        },
        "Hold": {"Type": "Wait", "Seconds": 3600, "Next": "Count"},
    },
}


class CountingClient(Client):
    """The runtime's client, counting the history events it reads."""

    events_read = 0

    def history_range(self, name: str, start: int, stop: int) -> list[dict[str, Any]]:
        events = super().history_range(name, start, stop)
        self.events_read += len(events)
        return events


@pytest.fixture
def client(settings: Settings) -> Iterator[CountingClient]:
    connection = redis.Redis.from_url(settings.redis_url)
    yield CountingClient(connection, settings)
    connection.close()


def _pages(client: Client) -> Pages:
    return Pages(client, Renderer(Sessions(None)))


def _running(client: Client, name: str, rounds: int) -> None:
    """Starts ``name``, which loops ``rounds`` times and then waits: 4 * rounds + 2 events."""
    machine = f"Loops{rounds}"
    definition = json.loads(json.dumps(LOOPS).replace('"${rounds}"', str(rounds)))
    client.register_machine(machine, definition)
    client.start_execution(machine, {"n": 0}, name=name)
    described = client.describe(name)
    assert described is not None and described["status"] == "RUNNING"


def _grow(client: Client, name: str, rounds: int) -> int:
    """Appends ``rounds`` more rounds of the loop (Hold, Count, Again, Hold again), as a running
    execution would: six events a round. Returns the history's new length."""
    key = client.keys.history(name)
    last = client.history_range(name, -1, -1)[0]
    event_id, n, at = int(last["id"]), int(last["input"]["n"]), float(last["timestamp"])
    for _ in range(rounds):
        steps = [
            ("WaitStateExited", "Hold", "output", n),
            ("PassStateEntered", "Count", "input", n),
            ("PassStateExited", "Count", "output", n + 1),
            ("ChoiceStateEntered", "Again", "input", n + 1),
            ("ChoiceStateExited", "Again", "output", n + 1),
            ("WaitStateEntered", "Hold", "input", n + 1),
        ]
        for kind, state, field, value in steps:
            event_id, at = event_id + 1, at + 0.001
            event = {"id": event_id, "previousEventId": event_id - 1, "timestamp": at, "type": kind}
            client.redis.rpush(key, json.dumps({**event, "name": state, field: {"n": value}}))
        n += 1
    return client.history_length(name)


def _fresh_view(settings: Settings, name: str) -> dict[str, Any] | None:
    connection = redis.Redis.from_url(settings.redis_url)
    try:
        return _pages(Client(connection, settings))._execution_view(name)
    finally:
        connection.close()


def _view_reading(client: CountingClient, pages: Pages, name: str) -> tuple[dict[str, Any] | None, int]:
    """The page's view of ``name`` and how many history events building it read."""
    client.events_read = 0
    view = pages._execution_view(name)
    return view, client.events_read


@pytest.mark.parametrize(
    ("rounds", "more_rounds"),
    [
        (25, 2),  # a short history stays short
        (1180, 150),  # ~4,700 events grow past the 5,000 a page shows whole
        (1300, 400),  # a long history grows by more than the 1,000 latest events it shows
    ],
)
def test_a_growing_history_is_read_only_from_where_the_last_view_stopped(
    settings: Settings, client: CountingClient, rounds: int, more_rounds: int
) -> None:
    _running(client, "grows", rounds)
    pages = _pages(client)
    length = client.history_length("grows")
    first, read = _view_reading(client, pages, "grows")
    assert read == length and first == _fresh_view(settings, "grows")

    grown = _grow(client, "grows", more_rounds)
    second, read = _view_reading(client, pages, "grows")
    # The new events, and the first one: the check that it is still the same history.
    assert read == grown - length + 1
    assert second is not None and second == _fresh_view(settings, "grows")
    assert second["history_length"] == grown

    third, read = _view_reading(client, pages, "grows")
    assert read == 1 and third == second


def test_a_history_that_grows_while_shown_whole_and_then_past_it_matches_a_fresh_read(
    settings: Settings, client: CountingClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a view that asked for the length before the execution added its last events.
    _running(client, "raced", 1240)
    length = client.history_length("raced")
    pages = _pages(client)
    with monkeypatch.context() as patched:
        patched.setattr(Client, "history_length", lambda self, name: length - 50)
        raced = pages._execution_view("raced")
        assert raced == _fresh_view(settings, "raced")
    # When it grows on past what a page shows whole, the next view still matches a fresh one.
    _grow(client, "raced", 300)
    view, read = _view_reading(client, pages, "raced")
    assert read == 300 * 6 + 1 and view == _fresh_view(settings, "raced")


def test_a_history_that_shrank_is_read_whole(settings: Settings, client: CountingClient) -> None:
    _running(client, "shrinks", 40)
    pages = _pages(client)
    _grow(client, "shrinks", 10)
    pages._execution_view("shrinks")
    client.redis.ltrim(client.keys.history("shrinks"), 0, 99)

    view, read = _view_reading(client, pages, "shrinks")
    assert read == 100  # the length alone says it cannot go on: the whole history afresh
    assert view is not None and view["history_length"] == 100
    assert view == _fresh_view(settings, "shrinks")


def test_a_history_rewritten_with_another_first_event_is_read_whole(
    settings: Settings, client: CountingClient
) -> None:
    _running(client, "replaced", 40)
    pages = _pages(client)
    pages._execution_view("replaced")
    # As if it were deleted and started again under its name: a longer history, another start.
    key = client.keys.history("replaced")
    events = client.history("replaced")
    client.redis.delete(key)
    started = {**events[0], "timestamp": events[0]["timestamp"] + 60}
    client.redis.rpush(key, *[json.dumps(event) for event in [started, *events[1:]]])
    length = _grow(client, "replaced", 3)

    view, read = _view_reading(client, pages, "replaced")
    assert read == 1 + length
    assert view is not None and view["started"] == started["timestamp"]
    assert view == _fresh_view(settings, "replaced")


@pytest.mark.parametrize("change", [{"status": "ABORTED"}, {"redriveCount": 1}])
def test_an_execution_that_ended_or_was_redriven_since_is_read_whole(
    settings: Settings, client: CountingClient, monkeypatch: pytest.MonkeyPatch, change: dict[str, Any]
) -> None:
    _running(client, "changed", 40)
    pages = _pages(client)
    pages._execution_view("changed")
    length = _grow(client, "changed", 2)
    described = client.describe("changed")
    assert described is not None
    monkeypatch.setattr(Client, "describe", lambda self, name: {**described, **change})

    view, read = _view_reading(client, pages, "changed")
    assert read == length and view == _fresh_view(settings, "changed")
    if change.get("status") == "ABORTED":  # an ended execution's reading is not kept
        assert pages.readings.take("changed") is None
        assert view is not None and '"status": "failed"' in view["runs_json"]


def test_a_deleted_execution_is_not_found_and_its_reading_is_dropped(client: CountingClient) -> None:
    _running(client, "gone", 10)
    pages = _pages(client)
    pages._execution_view("gone")
    client.redis.delete(client.keys.execution("gone"), client.keys.history("gone"))
    assert pages._execution_view("gone") is None
    assert len(pages.readings) == 0


def test_the_kept_readings_stay_bounded_the_least_recently_viewed_dropped_first(
    settings: Settings, client: CountingClient
) -> None:
    pages = _pages(client)
    size = pages.readings.size
    names = [f"many-{index:02d}" for index in range(size + 5)]
    for name in names:
        _running(client, name, 5)
        pages._execution_view(name)
    assert len(pages.readings) == size
    # The oldest views were dropped: read whole again; the newest go on.
    _, read = _view_reading(client, pages, names[0])
    assert read == client.history_length(names[0])
    _, read = _view_reading(client, pages, names[-1])
    assert read == 1


def test_the_kept_readings_hold_at_most_their_budget_of_events() -> None:
    readings = HistoryReadings(size=10, max_events=250)
    for index in range(5):
        reading = HistoryReading(redrive_count=0)
        reading.prefix = [{"id": event} for event in range(100)]
        readings.keep(f"e{index}", reading)
    assert len(readings) == 2  # 200 events kept; a third reading would pass 250
    assert readings.take("e4") is not None and readings.take("e0") is None


def test_the_kept_readings_were_read_from_at_most_their_budget_of_events() -> None:
    readings = HistoryReadings(size=10, max_read=25_000)
    for index in range(3):
        reading = HistoryReading(redrive_count=0)
        reading.count = 10_000  # a long history's course, though it keeps few events
        readings.keep(f"e{index}", reading)
    assert len(readings) == 2
    assert readings.take("e0") is None


def test_a_long_reading_keeps_only_the_events_its_page_shows(client: CountingClient) -> None:
    _running(client, "long", 1300)
    pages = _pages(client)
    pages._execution_view("long")
    reading = pages.readings.take("long")
    assert reading is not None
    assert reading.kept_events == 2 * history_reads.HISTORY_ENDS
    assert reading.count == client.history_length("long")


def test_the_live_part_of_a_followed_page_is_the_html_of_a_fresh_one(
    settings: Settings, client: CountingClient
) -> None:
    _running(client, "live", 300)
    api = ApiSettings(region="us-east-1", account_id="000000000000")
    followed = TestClient(build_app(settings, api, None), base_url="http://127.0.0.1")
    followed.get("/ui/executions/live?part=live")
    _grow(client, "live", 20)
    page = followed.get("/ui/executions/live?part=live")
    fresh = TestClient(build_app(settings, api, None), base_url="http://127.0.0.1")
    assert page.status_code == 200
    assert _without_csrf(page.text) == _without_csrf(fresh.get("/ui/executions/live?part=live").text)


def _without_csrf(page: str) -> str:
    """The page without its CSRF tokens, which each app signs with a key of its own."""
    return re.sub(r'name="csrf" value="[^"]*"', 'name="csrf"', page)
