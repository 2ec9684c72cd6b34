"""The dashboard in a real browser (Debian's chromium, headless, driven by Playwright).

One stack for the module: ``redstep serve`` (with credentials), an orchestrator and a worker,
the dragon pipeline fed by ``redstep produce``, and a definition that fails after a Catch
took on a Parallel's failed branch. Screenshots of each step are kept in the test's tmp dir;
with ``REDSTEP_README_SCREENSHOTS=1`` the two README pictures are written into docs/ too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator.runtime.client import Client
from orchestrator.runtime.server import RedisServer
from orchestrator.settings import Settings
from tests.api_fixtures import ACCESS_KEY_ID, SECRET_ACCESS_KEY, api_env, serve, start
from tests.chaos import stop, wait_until

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH: install Debian's chromium (apt-get install chromium)"
)

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FINISH_SECONDS = 90.0
UI_TIMEOUT_MS = 60_000
LAMBDA = "arn:aws:lambda:us-east-1:000000000000:function:"
FUNCTIONS = """
def explode(event, context):
    raise ValueError("the dragon refused: " + str(event.get("why", "no reason")))
"""
CATCH_AND_PARALLEL = {
    "Comment": "A Parallel whose second branch fails; the Catch sends it to a Fail state.",
    "StartAt": "Hatch",
    "States": {
        "Hatch": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "CountEggs", "States": {"CountEggs": {"Type": "Pass", "End": True}}},
                {
                    "StartAt": "LightFire",
                    "States": {"LightFire": {"Type": "Task", "Resource": LAMBDA + "explode", "End": True}},
                },
            ],
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Report"}],
            "Next": "Celebrate",
        },
        "Report": {"Type": "Pass", "Next": "GiveUp"},
        "GiveUp": {"Type": "Fail", "Error": "HatchFailed", "Cause": "a branch failed"},
        "Celebrate": {"Type": "Succeed"},
    },
}
EXPLODES = {
    "StartAt": "Ignite",
    "States": {"Ignite": {"Type": "Task", "Resource": LAMBDA + "explode", "End": True}},
}
NAPS = {"StartAt": "Nap", "States": {"Nap": {"Type": "Wait", "Seconds": 3600, "End": True}}}


@dataclass
class Stack:
    url: str
    client: Client
    shots: Path


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("dashboard")
    functions = work / "dashboard_functions.py"
    functions.write_text(FUNCTIONS)
    env = api_env(redis_server.url, f"ui{os.getpid()}")
    processes = [
        start(env, work / "orchestrator.log", "orchestrator"),
        start(env, work / "worker.log", "worker", "--functions", str(functions)),
    ]
    connection = redis.Redis.from_url(redis_server.url)
    try:
        process, url = serve(env, work)
        processes.append(process)
        client = Client(connection, Settings(redis_url=redis_server.url, prefix=env["REDSTEP_PREFIX"]))
        client.register_machine("CatchAndParallel", CATCH_AND_PARALLEL)
        client.register_machine("Explodes", EXPLODES)
        client.register_machine("Naps", NAPS)
        produced = subprocess.run(
            [sys.executable, "-m", "producer.cli", "produce", str(ROOT / "producer/data/demo25.json")],
            env=env,
            capture_output=True,
            timeout=120,
        )
        assert produced.returncode == 0, produced.stderr.decode()
        client.start_execution("CatchAndParallel", {"clutch": 3}, name="hatch-1")
        client.start_execution("Explodes", {"why": "too cold"}, name="ignite-1")
        wait_until(
            lambda: _finished(client, 27), FINISH_SECONDS, "the 25 dragon executions and 2 failing ones"
        )
        shots = work / "screenshots"
        shots.mkdir()
        yield Stack(url, client, shots)
    finally:
        for process in processes:
            stop(process)
        connection.close()


def _finished(client: Client, count: int) -> bool:
    executions = client.list_executions()
    return len(executions) >= count and all(e["status"] != "RUNNING" for e in executions)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, stack: Stack) -> Iterator[Any]:
    """A logged-in page on a laptop-sized screen."""
    context = browser.new_context(viewport={"width": 1360, "height": 900}, base_url=stack.url)
    context.set_default_timeout(UI_TIMEOUT_MS)
    tab = context.new_page()
    _log_in(tab)
    yield tab
    context.close()


def _log_in(tab: Any) -> None:
    tab.goto("/ui/login")
    tab.get_by_label("Access key id").fill(ACCESS_KEY_ID)
    tab.get_by_label("Secret access key").fill(SECRET_ACCESS_KEY)
    tab.get_by_role("button", name="Log in").click()
    tab.wait_for_url("**/ui/")


def _expected_statuses(history: list[dict[str, Any]]) -> dict[str, str]:
    """A sequential run's statuses, read plainly: a state that exited after a failed call that
    was not retried was caught, one that exited otherwise succeeded; one never entered is absent."""
    statuses: dict[str, str] = {}
    failed = False
    for event in history:
        if event["type"].endswith("StateEntered") or event["type"] == "LambdaFunctionScheduled":
            failed = False
        elif event["type"] == "LambdaFunctionFailed":
            failed = True
        elif event["type"].endswith("StateExited"):
            statuses[event["name"]] = "caught" if failed else "succeeded"
    return statuses


def _graph_statuses(tab: Any) -> dict[str, str]:
    return tab.eval_on_selector_all(
        "svg.graph [data-state]",
        "nodes => Object.fromEntries(nodes.map(n => [n.dataset.state, n.dataset.status]))",
    )


def test_a_dragon_execution_is_reached_from_the_list_and_its_graph_matches_its_history(
    page: Any, stack: Stack
) -> None:
    page.goto("/ui/executions")
    page.screenshot(path=stack.shots / "executions.png", full_page=True)
    if os.environ.get("REDSTEP_README_SCREENSHOTS") == "1":
        page.screenshot(path=DOCS / "dashboard-executions.png")
    page.get_by_label("State machine").select_option("DragonPipeline")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/ui/executions?machine=DragonPipeline*")
    dragon = next(e for e in stack.client.list_executions() if e["stateMachine"] == "DragonPipeline")
    page.get_by_role("link", name=dragon["name"], exact=True).click()
    page.wait_for_url(f"**/ui/executions/{dragon['name']}")
    page.locator('svg.graph [data-state="ValidateDragon"]').click()
    assert dragon["input"]["dragon_name_str"] in page.locator("#state-input").inner_text()
    page.screenshot(path=stack.shots / "dragon.png", full_page=True)
    seen: set[str] = set()
    for execution in stack.client.list_executions():
        if execution["stateMachine"] != "DragonPipeline":
            continue
        if execution["name"] != dragon["name"]:
            page.goto(f"/ui/executions/{execution['name']}")
        statuses = _graph_statuses(page)
        assert set(statuses) == {
            "ValidateDragon",
            "DragonExists?",
            "AddDragon",
            "NotifyInserted",
            "NotifyExists",
        }
        expected = _expected_statuses(stack.client.history(execution["name"]))
        assert statuses == {**dict.fromkeys(statuses, "not-run"), **expected}, execution["name"]
        seen.update(f"{name}:{status}" for name, status in statuses.items())
    # demo25 holds repeats: some runs insert, others find the dragon known, one way or the other.
    assert {"NotifyInserted:succeeded", "NotifyExists:succeeded", "NotifyInserted:not-run"} <= seen


def test_a_caught_parallel_is_coloured_state_by_state(page: Any, stack: Stack) -> None:
    page.goto("/ui/executions/hatch-1")
    history = stack.client.history("hatch-1")
    failures = [e for e in history if e["type"] == "LambdaFunctionFailed"]
    assert failures and "the dragon refused" in failures[0]["cause"]
    assert _graph_statuses(page) == {
        "Hatch": "caught",
        "CountEggs": "succeeded",
        "LightFire": "failed",
        "Report": "succeeded",
        "GiveUp": "failed",
        "Celebrate": "not-run",
    }
    page.locator('svg.graph [data-state="LightFire"]').focus()
    page.keyboard.press("Enter")
    assert page.locator("#state-error").inner_text() == "ValueError"
    assert page.locator("#execution-error").inner_text() == "HatchFailed"
    assert page.locator('tr[data-event-type="ExecutionFailed"]').count() == 1
    page.screenshot(path=stack.shots / "hatch.png", full_page=True)
    if os.environ.get("REDSTEP_README_SCREENSHOTS") == "1":
        page.screenshot(path=DOCS / "dashboard-execution.png")


def test_a_running_execution_is_stopped_from_its_page_and_shows_aborted(page: Any, stack: Stack) -> None:
    stack.client.start_execution("Naps", {}, name="nap-1")
    page.goto("/ui/executions/nap-1")
    assert page.locator('svg.graph [data-state="Nap"]').get_attribute("data-status") == "running"
    page.get_by_role("button", name="Stop").click()
    page.get_by_role("button", name="Stop it").click()
    page.wait_for_url("**/ui/executions/nap-1")
    page.locator("#execution-status", has_text="ABORTED").wait_for()
    assert page.locator('svg.graph [data-state="Nap"]').get_attribute("data-status") == "failed"
    assert stack.client.describe("nap-1")["status"] == "ABORTED"


def test_a_failed_execution_is_redriven_from_its_page(page: Any, stack: Stack) -> None:
    page.goto("/ui/executions/ignite-1")
    page.get_by_role("button", name="Redrive").click()
    page.get_by_role("button", name="Redrive it").click()
    page.wait_for_url("**/ui/executions/ignite-1")
    wait_until(lambda: stack.client.describe("ignite-1")["redriveCount"] == 1, FINISH_SECONDS, "the redrive")
    # The task fails again: the redriven run ends FAILED once more, after one more attempt.
    wait_until(lambda: stack.client.describe("ignite-1")["status"] == "FAILED", FINISH_SECONDS, "the rerun")
    page.reload()
    page.locator('tr[data-event-type="ExecutionRedriven"]').wait_for()
    assert "1 time(s)" in page.locator(".facts").inner_text()


def test_a_running_execution_page_follows_it_without_a_reload(page: Any, stack: Stack) -> None:
    stack.client.start_execution("Naps", {}, name="nap-followed")
    page.goto("/ui/executions/nap-followed")
    assert page.locator("#execution-status").inner_text() == "RUNNING"
    page.locator('svg.graph [data-state="Nap"]').click()
    stack.client.stop_execution("nap-followed", "Test.Stopped", "stopped behind the page's back")
    page.locator("#execution-status", has_text="ABORTED").wait_for()
    assert page.locator('tr[data-event-type="ExecutionAborted"]').count() == 1
    assert page.locator("#state-name").inner_text() == "Nap"  # the chosen state stays shown


def test_the_overview_updates_without_a_reload(page: Any, stack: Stack) -> None:
    from playwright.sync_api import expect

    wait_until(lambda: not stack.client.list_executions("RUNNING"), FINISH_SECONDS, "no execution running")
    page.goto("/ui/")
    running = page.locator('[data-key="executions.RUNNING"]')
    before = int(running.inner_text())
    stack.client.start_execution("Naps", {}, name="nap-live")
    expect(running).to_have_text(str(before + 1), timeout=UI_TIMEOUT_MS)
    page.screenshot(path=stack.shots / "overview.png", full_page=True)
    stack.client.stop_execution("nap-live")


def test_pages_without_a_session_go_to_the_login_and_logout_ends_it(browser: Any, stack: Stack) -> None:
    context = browser.new_context(base_url=stack.url)
    context.set_default_timeout(UI_TIMEOUT_MS)
    tab = context.new_page()
    for path in ("/ui/", "/ui/executions", "/ui/executions/hatch-1", "/ui/state-machines/Naps"):
        tab.goto(path)
        assert "/ui/login" in tab.url, path
    tab.get_by_label("Access key id").fill(ACCESS_KEY_ID)
    tab.get_by_label("Secret access key").fill(SECRET_ACCESS_KEY)
    tab.get_by_role("button", name="Log in").click()
    tab.wait_for_url("**/ui/state-machines/Naps")
    assert SECRET_ACCESS_KEY not in tab.content() and SECRET_ACCESS_KEY not in tab.url
    tab.get_by_role("button", name="Log out").click()
    tab.wait_for_url("**/ui/login")
    tab.goto("/ui/")
    assert "/ui/login" in tab.url
    context.close()


def test_an_execution_page_reads_on_a_phone(browser: Any, stack: Stack) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, base_url=stack.url, is_mobile=True)
    context.set_default_timeout(UI_TIMEOUT_MS)
    tab = context.new_page()
    _log_in(tab)
    tab.goto("/ui/executions/hatch-1")
    overflow = tab.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0  # wide parts (the graph, tables) scroll inside their own boxes
    tab.screenshot(path=stack.shots / "phone.png", full_page=True)
    context.close()
