"""The dashboard over plain HTTP: access, CSRF, confirmations, 404s, listing and validation.

The app is ``redstep serve``'s own (``build_app``) on the session's redis-server, driven by
starlette's TestClient; no orchestrator runs, so an execution of a Wait state stays RUNNING.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from orchestrator.api.config import ApiSettings
from orchestrator.api.server import build_app
from orchestrator.dashboard import pages, reads
from orchestrator.dashboard.access import MAX_FORM_BYTES
from orchestrator.dashboard.auth import COOKIE, LOGIN_COOKIE, LOGIN_SECONDS, SESSION_SECONDS, Sessions
from orchestrator.runtime import execution_index
from orchestrator.runtime.client import Client
from orchestrator.runtime.dead_letters import DeadLetters
from orchestrator.runtime.keys import STATUSES
from orchestrator.runtime.optimistic import CommitConflict
from orchestrator.settings import Settings
from tests.test_dlq import dead_letter_records

KEY_ID, SECRET = "AKIDDASHBOARD0001", "dashboard/Secret+Key/000000000000000000000"
WAIT = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": True}}}
PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
LOOP_ROUNDS = 1300
LOOP = {  # four events a round, all run at once by the start itself: over 5,000 events
    "StartAt": "Count",
    "States": {
        "Count": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.n, 1)"}, "Next": "Again"},
        "Again": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.n", "NumericLessThan": LOOP_ROUNDS, "Next": "Count"}],
            "Default": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}
PAGES = [
    "/ui/",
    "/ui/executions",
    "/ui/executions/x",
    "/ui/state-machines",
    "/ui/validate",
    "/ui/dead-letters",
]


@pytest.fixture
def client(settings: Settings) -> Iterator[Client]:
    connection = redis.Redis.from_url(settings.redis_url)
    runtime = Client(connection, settings)
    runtime.register_machine("Waits", WAIT)
    runtime.register_machine("Passes", PASS)
    yield runtime
    connection.close()


def _browser(settings: Settings, credentials: dict[str, str] | None, https: bool = False) -> TestClient:
    app = build_app(settings, ApiSettings(region="us-east-1", account_id="000000000000"), credentials)
    return TestClient(
        app, base_url="https://127.0.0.1" if https else "http://127.0.0.1", follow_redirects=False
    )


@pytest.fixture
def anonymous(settings: Settings, client: Client) -> TestClient:
    return _browser(settings, {KEY_ID: SECRET})


def _log_in(visitor: TestClient, **fields: str) -> Any:
    """POST the login form as a browser does: its page first, for the form's CSRF token."""
    token = _csrf(visitor.get("/ui/login").text)
    return visitor.post("/ui/login", data={"csrf": token, **fields})


@pytest.fixture
def browser(anonymous: TestClient) -> TestClient:
    answer = _log_in(anonymous, access_key_id=KEY_ID, secret_access_key=SECRET)
    assert answer.status_code == 303
    return anonymous


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the page has no CSRF token"
    return found.group(1)


def _events(client: Client) -> int:
    return int(client.redis.xlen(client.keys.events))


@pytest.mark.parametrize("path", PAGES)
def test_every_page_without_a_session_redirects_to_the_login(anonymous: TestClient, path: str) -> None:
    answer = anonymous.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/ui/login?next=")


def test_a_wrong_secret_is_refused_and_the_right_one_sets_a_strict_httponly_cookie(
    anonymous: TestClient,
) -> None:
    wrong = _log_in(anonymous, access_key_id=KEY_ID, secret_access_key="nope")
    assert wrong.status_code == 401
    assert COOKIE not in wrong.headers.get("set-cookie", "")
    assert "not a pair this server accepts" in wrong.text
    right = _log_in(anonymous, access_key_id=KEY_ID, secret_access_key=SECRET, next="/ui/executions")
    assert right.status_code == 303 and right.headers["location"] == "/ui/executions"
    cookie = right.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain HTTP here
    assert SECRET not in cookie
    assert anonymous.get("/ui/executions").status_code == 200


def _refused_login(visitor: TestClient, answer: Any) -> None:
    """A login refused for its CSRF token: nothing tried, no session, a fresh form to retry."""
    assert answer.status_code == 403
    assert "security token is missing, wrong or expired" in answer.text
    assert COOKIE not in answer.cookies
    assert visitor.get("/ui/").status_code == 303
    assert _csrf(answer.text)


def test_a_login_without_its_form_token_is_refused_and_logs_no_one_in(
    anonymous: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    right = {"access_key_id": KEY_ID, "secret_access_key": SECRET}
    with caplog.at_level(logging.INFO, logger="redstep.dashboard"):
        # Another site's form: neither the field nor the login cookie.
        _refused_login(anonymous, anonymous.post("/ui/login", data=right))
    assert "logged in" not in caplog.text
    anonymous.cookies.clear()
    token = _csrf(anonymous.get("/ui/login").text)
    # A forged field beside a real cookie.
    _refused_login(anonymous, anonymous.post("/ui/login", data={**right, "csrf": "forged" + token[6:]}))
    # The real field without its cookie (a cross-site POST does not carry a SameSite=Strict one).
    anonymous.cookies.clear()
    _refused_login(anonymous, anonymous.post("/ui/login", data={**right, "csrf": token}))


def test_a_login_token_is_good_only_with_its_own_cookie(settings: Settings, client: Client) -> None:
    attacker, victim = _browser(settings, {KEY_ID: SECRET}), _browser(settings, {KEY_ID: SECRET})
    attackers_token = _csrf(attacker.get("/ui/login").text)
    victim.get("/ui/login")  # the victim has a login cookie of their own
    answer = victim.post(
        "/ui/login", data={"access_key_id": KEY_ID, "secret_access_key": SECRET, "csrf": attackers_token}
    )
    _refused_login(victim, answer)
    # The same visitor's own pair works, and is spent by the login.
    answer = _log_in(victim, access_key_id=KEY_ID, secret_access_key=SECRET)
    assert answer.status_code == 303 and COOKIE in answer.cookies
    spent = [cookie for cookie in answer.headers.get_list("set-cookie") if cookie.startswith(LOGIN_COOKIE)]
    assert len(spent) == 1 and "Max-Age=0" in spent[0]


def test_a_login_form_expires_and_is_renewed_before_it_does() -> None:
    now = [1_000_000.0]
    sessions = Sessions({KEY_ID: SECRET}, clock=lambda: now[0])
    cookie = sessions.login_cookie(None)
    token = sessions.login_csrf_token(cookie)
    assert sessions.login_csrf_ok(cookie, token)
    assert sessions.login_cookie(cookie) == cookie  # a second tab shares it
    now[0] += LOGIN_SECONDS * 0.75
    renewed = sessions.login_cookie(cookie)
    assert renewed != cookie and sessions.login_csrf_ok(renewed, sessions.login_csrf_token(renewed))
    assert sessions.login_csrf_ok(cookie, token)  # the page still open keeps working until it expires
    now[0] += LOGIN_SECONDS * 0.25
    assert not sessions.login_csrf_ok(cookie, token)
    nonce, expiry, signature = cookie.split(".")
    stretched = f"{nonce}.{int(expiry) + LOGIN_SECONDS}.{signature}"
    assert not sessions.login_csrf_ok(stretched, token)
    assert not Sessions({KEY_ID: "another secret"}).login_csrf_ok(renewed, sessions.login_csrf_token(renewed))


def test_the_cookie_is_secure_over_https(settings: Settings, client: Client) -> None:
    browser = _browser(settings, {KEY_ID: SECRET}, https=True)
    assert "Secure" in browser.get("/ui/login").headers["set-cookie"]  # the login form's cookie
    answer = _log_in(browser, access_key_id=KEY_ID, secret_access_key=SECRET)
    assert "Secure" in answer.headers["set-cookie"]


def test_a_login_never_sends_its_user_to_another_site(anonymous: TestClient) -> None:
    answer = _log_in(anonymous, access_key_id=KEY_ID, secret_access_key=SECRET, next="//evil.example/")
    assert answer.headers["location"] == "/ui/"


def test_no_page_shows_the_secret(browser: TestClient, client: Client) -> None:
    client.start_execution("Passes", {"x": 1}, name="shown")
    for path in [*PAGES, "/ui/executions/shown", "/ui/state-machines/Passes", "/ui/overview.json"]:
        answer = browser.get(path)
        assert SECRET not in answer.text, path
        assert answer.status_code in (200, 404), path


def test_logout_ends_the_session(browser: TestClient) -> None:
    token = _csrf(browser.get("/ui/").text)
    answer = browser.post("/ui/logout", data={"csrf": token, "confirmed": "yes"})
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/login"
    assert browser.get("/ui/").status_code == 303


def test_a_stop_with_a_forged_or_missing_csrf_token_changes_nothing(
    browser: TestClient, client: Client
) -> None:
    client.start_execution("Waits", {}, name="keeps-running")
    before = _events(client)
    for form in ({"csrf": "forged", "confirmed": "yes"}, {"confirmed": "yes"}):
        answer = browser.post("/ui/executions/keeps-running/stop", data=form)
        assert answer.status_code == 403
        assert "Nothing was changed" in answer.text
    assert _events(client) == before
    assert client.describe("keeps-running")["status"] == "RUNNING"


def test_a_token_of_another_session_is_refused(
    settings: Settings, client: Client, browser: TestClient
) -> None:
    client.start_execution("Waits", {}, name="other-session")
    other = _browser(settings, {KEY_ID: SECRET})
    _log_in(other, access_key_id=KEY_ID, secret_access_key=SECRET)
    foreign = _csrf(other.get("/ui/executions/other-session").text)
    before = _events(client)
    answer = browser.post("/ui/executions/other-session/stop", data={"csrf": foreign, "confirmed": "yes"})
    assert answer.status_code == 403
    assert _events(client) == before


def test_an_expired_session_is_refused_and_nothing_changes(anonymous: TestClient, client: Client) -> None:
    client.start_execution("Waits", {}, name="expired-session")
    yesterday = Sessions({KEY_ID: SECRET}, clock=lambda: time.time() - SESSION_SECONDS - 60)
    session = yesterday.new_session(KEY_ID)
    anonymous.cookies.set(COOKIE, yesterday.cookie_value(session), domain="127.0.0.1", path="/ui")
    before = _events(client)
    answer = anonymous.post(
        "/ui/executions/expired-session/stop",
        data={"csrf": yesterday.csrf_token(session), "confirmed": "yes"},
    )
    assert answer.status_code == 403
    assert "expired" in answer.text
    assert _events(client) == before
    assert anonymous.get("/ui/executions").status_code == 303


def test_a_stop_asks_for_confirmation_then_asks_the_orchestrators_and_logs_who(
    browser: TestClient, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    client.start_execution("Waits", {}, name="to-stop")
    page = browser.get("/ui/executions/to-stop").text
    before = _events(client)
    asked = browser.post("/ui/executions/to-stop/stop", data={"csrf": _csrf(page)})
    assert asked.status_code == 200 and "Stop execution “to-stop”?" in asked.text
    assert _events(client) == before  # only asked, nothing sent yet
    with caplog.at_level(logging.INFO, logger="redstep.dashboard"):
        done = browser.post(
            "/ui/executions/to-stop/stop", data={"csrf": _csrf(asked.text), "confirmed": "yes"}
        )
    assert done.status_code == 303 and done.headers["location"] == "/ui/executions/to-stop"
    assert _events(client) == before + 1
    assert f"{KEY_ID} stopped execution to-stop" in caplog.text


def test_an_execution_started_from_the_page_runs_the_json_input(browser: TestClient, client: Client) -> None:
    token = _csrf(browser.get("/ui/state-machines/Passes").text)
    form = {"csrf": token, "input": '{"dragon": "Smaug"}', "name": "from-the-page"}
    asked = browser.post("/ui/state-machines/Passes/start", data=form)
    assert asked.status_code == 200 and client.describe("from-the-page") is None
    done = browser.post("/ui/state-machines/Passes/start", data={**form, "confirmed": "yes"})
    assert done.headers["location"] == "/ui/executions/from-the-page"
    assert client.describe("from-the-page")["output"] == {"dragon": "Smaug"}
    bad = browser.post("/ui/state-machines/Passes/start", data={**form, "input": "{oops", "confirmed": "yes"})
    assert bad.status_code == 400 and "The input is not JSON" in bad.text and "{oops" in bad.text


def test_a_redrive_of_a_succeeded_execution_is_refused(browser: TestClient, client: Client) -> None:
    client.start_execution("Passes", {}, name="done-already")
    token = _csrf(browser.get("/ui/executions/done-already").text)
    answer = browser.post("/ui/executions/done-already/redrive", data={"csrf": token, "confirmed": "yes"})
    assert answer.status_code == 409 and "cannot be redriven" in answer.text


def test_a_redrive_that_keeps_losing_races_is_a_503_that_changed_nothing(
    browser: TestClient, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.start_execution("Passes", {}, name="contested")
    token = _csrf(browser.get("/ui/executions/contested").text)
    before = _events(client)

    def always_overtaken(self: Client, name: str) -> None:
        # No real part loses a race on cue: what redrive raises after COMMIT_RETRIES lost races.
        raise CommitConflict(f"the redrive of {name}", 8, [])

    monkeypatch.setattr(Client, "redrive", always_overtaken)
    answer = browser.post("/ui/executions/contested/redrive", data={"csrf": token, "confirmed": "yes"})

    assert answer.status_code == 503
    assert "Nothing was changed: try again." in answer.text
    assert _events(client) == before and client.describe("contested")["status"] == "SUCCEEDED"


@pytest.mark.parametrize(
    ("path", "said"),
    [
        ("/ui/executions/no-such-run", "No execution named “no-such-run”."),
        ("/ui/state-machines/NoSuchMachine", "No state machine named “NoSuchMachine”."),
        ("/ui/nowhere", "No page at /ui/nowhere."),
    ],
)
def test_what_does_not_exist_is_a_404_page_that_names_it(browser: TestClient, path: str, said: str) -> None:
    answer = browser.get(path)
    assert answer.status_code == 404
    assert said in answer.text


def test_an_open_dashboard_needs_no_login_but_still_a_csrf_token(settings: Settings, client: Client) -> None:
    browser = _browser(settings, None)
    client.start_execution("Waits", {}, name="open-run")
    page = browser.get("/ui/executions/open-run")
    assert page.status_code == 200 and "Log out" not in page.text
    before = _events(client)
    assert browser.post("/ui/executions/open-run/stop", data={"confirmed": "yes"}).status_code == 403
    assert _events(client) == before
    done = browser.post("/ui/executions/open-run/stop", data={"csrf": _csrf(page.text), "confirmed": "yes"})
    assert done.status_code == 303 and _events(client) == before + 1


def test_the_list_is_newest_first_filtered_and_paginated(browser: TestClient, client: Client) -> None:
    for index in range(60):
        client.start_execution("Passes", {}, name=f"pass-{index:03d}")
    for index in range(5):
        client.start_execution("Waits", {}, name=f"wait-{index:03d}")
    first = browser.get("/ui/executions").text
    names = re.findall(r'<a href="/ui/executions/([^"?]+)">\1</a>', first)
    assert len(names) == 50 and names[:5] == [f"wait-{i:03d}" for i in (4, 3, 2, 1, 0)]
    older = re.search(r'<a href="([^"]+)" rel="next">', first)
    assert older
    second = browser.get(older.group(1).replace("&amp;", "&")).text
    rest = re.findall(r'<a href="/ui/executions/([^"?]+)">\1</a>', second)
    assert len(rest) == 15 and not set(rest) & set(names)
    assert 'rel="next"' not in second
    waits = browser.get("/ui/executions?machine=Waits").text
    assert re.findall(r'<a href="/ui/executions/([^"?]+)">\1</a>', waits) == [
        f"wait-{i:03d}" for i in (4, 3, 2, 1, 0)
    ]
    running = browser.get("/ui/executions?status=RUNNING").text
    assert len(re.findall(r'<a href="/ui/executions/([^"?]+)">\1</a>', running)) == 5
    prefixed = browser.get("/ui/executions?prefix=pass-05").text
    assert re.findall(r'<a href="/ui/executions/([^"?]+)">\1</a>', prefixed) == [
        f"pass-{i:03d}" for i in range(59, 49, -1)
    ]


def test_a_pasted_definition_shows_each_problem_with_its_json_path(browser: TestClient) -> None:
    token = _csrf(browser.get("/ui/validate").text)
    broken = json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}})
    answer = browser.post("/ui/validate", data={"csrf": token, "definition": broken})
    assert answer.status_code == 200
    assert "<code>/States/A/Next</code>" in answer.text
    assert 'data-state="A"' in answer.text  # still drawn
    malformed = browser.post("/ui/validate", data={"csrf": token, "definition": '{"StartAt": '})
    assert "not JSON" in malformed.text and "{&#34;StartAt&#34;: " in malformed.text
    huge = '{"StartAt": "A", "States": {}, "Comment": "' + "x" * (1024 * 1024) + '"}'
    too_large = browser.post("/ui/validate", data={"csrf": token, "definition": huge})
    assert too_large.status_code == 200 and "AWS accepts at most" in too_large.text
    assert "No graph: the definition is too large." in too_large.text
    valid = browser.post("/ui/validate", data={"csrf": token, "definition": json.dumps(PASS)})
    assert "The definition is valid" in valid.text


def test_the_overview_numbers_are_served_as_json_for_the_live_page(
    browser: TestClient, client: Client
) -> None:
    client.start_execution("Waits", {}, name="counted")
    numbers = browser.get("/ui/overview.json").json()
    assert numbers["executions"]["RUNNING"] == 1
    assert numbers["machines"]["Waits"]["RUNNING"] == 1
    assert [queue["name"] for queue in numbers["queues"]] == ["dragons"]


def _indexed_by_machine(client: Client) -> None:
    deadline = time.monotonic() + 60
    while not execution_index.is_built(client.redis, client.keys, background=False):
        assert time.monotonic() < deadline, "the per-machine execution indexes were never built"
        time.sleep(0.05)


def test_the_overview_counts_every_execution_of_each_machine(browser: TestClient, client: Client) -> None:
    _indexed_by_machine(client)
    many = reads.RECENT_FOR_MACHINES + 5
    for index in range(many):
        client.start_execution("Passes", {}, name=f"many-{index:03d}")  # a Pass runs at once
    for index in range(3):
        client.start_execution("Waits", {}, name=f"few-{index}")  # no orchestrator: RUNNING
    numbers = browser.get("/ui/overview.json").json()
    assert numbers["machines"]["Passes"] == {**dict.fromkeys(STATUSES, 0), "SUCCEEDED": many}
    assert numbers["machines"]["Waits"] == {**dict.fromkeys(STATUSES, 0), "RUNNING": 3}
    assert numbers["machines_sample"] is None
    page = browser.get("/ui/").text
    assert "among the latest" not in page
    assert f'data-key="machines.Passes.SUCCEEDED">{many}<' in page


def test_until_the_machine_indexes_are_built_the_overview_says_it_samples(
    browser: TestClient, client: Client
) -> None:
    _indexed_by_machine(client)
    client.start_execution("Waits", {}, name="sampled")
    client.redis.delete(execution_index.built_key(client.keys))
    client.redis.set(execution_index.building_key(client.keys), "1")  # another reader rebuilds them
    numbers = browser.get("/ui/overview.json").json()
    assert numbers["machines_sample"] == 1 and numbers["machines"]["Waits"]["RUNNING"] == 1
    assert "among the latest 1 executions" in browser.get("/ui/").text


def _event_ids(page: str) -> list[int]:
    return [
        int(found) for found in re.findall(r'<tr data-event-type="[^"]+"><td class="num">(\d+)</td>', page)
    ]


def test_a_long_history_shows_its_first_and_latest_events_and_pages_through_the_rest(
    browser: TestClient, client: Client
) -> None:
    client.register_machine("Loops", LOOP)
    client.start_execution("Loops", {"n": 0}, name="long")
    described = client.describe("long")
    assert described is not None and described["status"] == "SUCCEEDED"
    length = client.history_length("long")
    assert length > pages.MAX_HISTORY_EVENTS
    page = browser.get("/ui/executions/long").text
    ends = pages.HISTORY_ENDS
    assert f"This history has {length:,} events: the first {ends:,} and the latest {ends:,}" in page
    shown = _event_ids(page)
    assert shown == [*range(1, ends + 1), *range(length - ends + 1, length + 1)]
    assert re.search(rf'data-event-type="ExecutionSucceeded"><td class="num">{length}<', page)
    gap = re.search(
        r'Events ([\d,]+) to ([\d,]+) \(([\d,]+) events\) are not shown here: <a href="([^"]+)"', page
    )
    assert gap and gap.group(1) == f"{ends + 1:,}" and gap.group(2) == f"{length - ends:,}"
    # The graph reads the whole history: the loop's last state ran, though only after the first events.
    assert re.search(r'data-state="Done"[^>]*data-status="succeeded"', page)
    # Paging through the rest, from the gap's link, meets every event once, in order.
    seen, url = list(range(1, ends + 1)), gap.group(4).replace("&amp;", "&")
    while url:
        history = browser.get(url)
        assert history.status_code == 200
        seen += _event_ids(history.text)
        later = re.search(r'<a href="([^"]+)" rel="next">', history.text)
        url = later.group(1).replace("&amp;", "&") if later else ""
    assert seen == list(range(1, length + 1))
    first = browser.get("/ui/executions/long/history").text
    assert _event_ids(first)[0] == 1 and 'rel="prev"' not in first
    assert f"Events 1 to {pages.HISTORY_PAGE:,} of {length:,}." in first
    past = browser.get("/ui/executions/long/history?from=999999").text
    assert _event_ids(past)[-1] == length and 'rel="next"' not in past
    assert browser.get("/ui/executions/nope/history").status_code == 404


def test_a_history_of_at_most_the_limit_is_shown_whole(browser: TestClient, client: Client) -> None:
    client.start_execution("Passes", {}, name="short")
    page = browser.get("/ui/executions/short").text
    assert _event_ids(page) == list(range(1, client.history_length("short") + 1))
    assert "history-gap" not in page and "Page through" not in page


def test_every_asset_is_served_by_redstep(browser: TestClient) -> None:
    page = browser.get("/ui/").text
    assets = re.findall(r'(?:href|src)="([^"#]+\.(?:css|js))"', page)
    assert assets and all(asset.startswith("/ui/static/") for asset in assets)
    for asset in assets:
        assert browser.get(asset).status_code == 200


def test_a_machine_filter_matches_the_whole_name_only(browser: TestClient, client: Client) -> None:
    client.register_machine("Wait", PASS)
    client.start_execution("Waits", {}, name="of-waits")
    client.start_execution("Wait", {"Waits": "Waits"}, name="of-wait")
    page = browser.get("/ui/executions?machine=Wait").text
    assert re.findall(r'<a href="/ui/executions/([^"?]+)">\1</a>', page) == ["of-wait"]


def test_a_page_stops_at_its_scan_limit_and_links_on_to_the_rest(
    browser: TestClient, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reads, "SCAN_LIMIT", 20)
    monkeypatch.setattr(reads, "SCAN_BATCH", 10)
    client.start_execution("Waits", {}, name="oldest-wait")
    for index in range(30):
        client.start_execution("Passes", {}, name=f"newer-{index:02d}")
    # A name prefix is matched by scanning the index (a machine has an index of its own).
    first = browser.get("/ui/executions?prefix=oldest").text
    assert "No execution matches." in first and "This page looked at 20 executions" in first
    older = re.search(r'<a href="([^"]+)" rel="next">', first)
    assert older
    second = browser.get(older.group(1).replace("&amp;", "&")).text
    assert re.findall(r'<a href="/ui/executions/([^"?]+)">\1</a>', second) == ["oldest-wait"]
    assert 'rel="next"' not in second


def test_dead_letters_are_listed_redriven_and_purged_after_confirmation(
    browser: TestClient, client: Client, settings: Settings
) -> None:
    dead_letter_records(client.redis, settings, [{"n": 1}, {"n": 2}])
    letters = DeadLetters(client.redis, settings)
    page = browser.get("/ui/dead-letters").text
    assert "Queue dragons" in page and page.count("<tr><td><code>") == 2
    form = {"csrf": _csrf(page), "queue": "dragons"}
    asked = browser.post("/ui/dead-letters/purge", data=form)
    assert "Delete every dead letter of queue “dragons” for good?" in asked.text
    assert len(letters.list()) == 2
    redriven = browser.post("/ui/dead-letters/redrive", data={**form, "confirmed": "yes"})
    assert redriven.headers["location"] == "/ui/dead-letters"
    assert letters.list() == [] and client.redis.xlen(client.keys.queue("dragons")) >= 2
    dead_letter_records(client.redis, settings, [{"n": 3}])
    browser.post("/ui/dead-letters/purge", data={**form, "confirmed": "yes"})
    assert letters.list() == []
    assert "No queue has dead letters." in browser.get("/ui/dead-letters").text


def test_a_form_larger_than_the_limit_is_refused_unread(browser: TestClient) -> None:
    token = _csrf(browser.get("/ui/validate").text)
    huge = "x" * (MAX_FORM_BYTES + 1)
    answer = browser.post("/ui/validate", data={"csrf": token, "definition": huge})
    assert answer.status_code == 403 and "at most 4 MiB" in answer.text


def test_a_history_that_grows_past_the_limit_while_read_is_shown_whole(
    browser: TestClient, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.register_machine("Loops", LOOP)
    client.start_execution("Loops", {"n": 0}, name="grew")
    length = client.history_length("grew")
    # As if the page asked for the length before a running execution added its last events.
    monkeypatch.setattr(Client, "history_length", lambda self, name: pages.MAX_HISTORY_EVENTS - 100)
    page = browser.get("/ui/executions/grew").text
    assert _event_ids(page) == list(range(1, length + 1))
    assert "history-gap" not in page and "Page through" not in page
