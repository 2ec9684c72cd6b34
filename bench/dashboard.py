"""How long the dashboard's executions list takes to answer with 100,000 executions stored.

A fresh private redis-server gets N real executions (``Client.start_execution``) of three
machines: Passes (80 %, SUCCEEDED), Fails (10 %, FAILED) and Waits (10 %, RUNNING: no
orchestrator runs), and, started first so they are the oldest, 10 of a machine called Rare.
Then the dashboard's own app (``redstep serve``'s, open as with --no-auth, in-process through
starlette's TestClient, so the figure includes rendering the page) is asked for pages of
/ui/executions, each several times; the median and the worst are printed per kind of page.
Then the overview (every machine's executions counted by status), and the page of one
execution whose history is ~25,000 events long (the runner's limit) and a page of its history;
last, the live part of such an execution's page while it runs (it waits a day at the end of its
loop), as its open page refreshes it: the first refresh reads the whole history, the next ones
only what was added since.

    python bench/dashboard.py [N]      # default 100000
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

import redis
from starlette.testclient import TestClient

from orchestrator.api.config import ApiSettings
from orchestrator.api.server import build_app
from orchestrator.runtime.client import Client
from orchestrator.runtime.server import RedisServer
from orchestrator.settings import Settings

MACHINES = {
    "Passes": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
    "Fails": {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Bench", "Cause": "on purpose"}}},
    "Waits": {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 86400, "End": True}}},
    "Rare": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
}
LONG_LOOP = {  # four history events a round, run at once by the start: a history of ~25,000 events
    "StartAt": "Count",
    "States": {
        "Count": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.n, 1)"}, "Next": "Again"},
        "Again": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.n", "NumericLessThan": 6200, "Next": "Count"}],
            "Default": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}
LONG_HOLD = {  # the same loop, ending in a day's Wait: a RUNNING execution with ~25,000 events
    "StartAt": "Count",
    "States": {
        "Count": LONG_LOOP["States"]["Count"],
        "Again": {**LONG_LOOP["States"]["Again"], "Default": "Hold"},
        "Hold": {"Type": "Wait", "Seconds": 86400, "End": True},
    },
}
ROUNDS = 15


def fill(client: Client, count: int) -> None:
    for name, definition in MACHINES.items():
        client.register_machine(name, definition)
    for index in range(10):
        client.start_execution("Rare", {"i": index}, name=f"rare-{index:02d}")
    started = time.perf_counter()
    for index in range(count):
        machine = "Fails" if index % 10 == 3 else "Waits" if index % 10 == 7 else "Passes"
        client.start_execution(machine, {"order": index}, name=f"{machine.lower()}-{index:06d}")
        if index % 10_000 == 9_999:
            print(f"  {index + 1:,} executions stored ({time.perf_counter() - started:.0f} s)", flush=True)


def timed(browser: TestClient, path: str) -> tuple[float, str]:
    started = time.perf_counter()
    answer = browser.get(path)
    elapsed = time.perf_counter() - started
    assert answer.status_code == 200, (path, answer.status_code)
    return elapsed, answer.text


def older_link(page: str) -> str | None:
    found = re.search(r'<a href="([^"]+)" rel="next">', page)
    return found.group(1).replace("&amp;", "&") if found else None


def measure(
    browser: TestClient, label: str, path: str, row: str = r'<tr><td><a href="/ui/executions/'
) -> None:
    times, page = [], ""
    for _ in range(ROUNDS):
        elapsed, page = timed(browser, path)
        times.append(elapsed * 1000)
    rows = len(re.findall(row, page))
    print(
        f"{label:<52} {rows:>3} rows  median {statistics.median(times):7.1f} ms  worst {max(times):7.1f} ms",
        flush=True,
    )


def main(count: int) -> None:
    with RedisServer() as server:
        settings = Settings(redis_url=server.url, prefix="bench")
        connection = redis.Redis.from_url(server.url)
        client = Client(connection, settings)
        print(f"storing {count:,} executions (+10 old ones of Rare) ...", flush=True)
        fill(client, count)
        browser = TestClient(build_app(settings, ApiSettings(), None), base_url="http://127.0.0.1")
        browser.get("/ui/")  # the open dashboard's session cookie
        print(f"{client.redis.zcard(client.keys.executions):,} executions stored; /ui/executions pages:")
        measure(browser, "newest first, no filter", "/ui/executions")
        path: str | None = "/ui/executions"
        for _ in range(100):  # the 101st page, following each page's Older link
            path = older_link(timed(browser, path)[1]) if path else None
        if path:
            measure(browser, "page 101 (by the Older links), no filter", path)
        measure(browser, "status FAILED (10 %)", "/ui/executions?status=FAILED")
        measure(browser, "machine Waits (10 %, read from each execution)", "/ui/executions?machine=Waits")
        measure(browser, "name prefix 'fails-0999'", "/ui/executions?prefix=fails-0999")
        measure(browser, "machine Rare (10 oldest): one capped scan", "/ui/executions?machine=Rare")
        measure(browser, "one execution's page", f"/ui/executions/passes-{count // 2:06d}")
        print("other pages (rows: history events shown):")
        measure(browser, "overview (each machine counted by status)", "/ui/")
        client.register_machine("LongLoop", LONG_LOOP)
        client.start_execution("LongLoop", {"n": 0}, name="long-history")
        events = client.history_length("long-history")
        event_row = r'<tr data-event-type="'
        measure(
            browser,
            f"execution of {events:,} events (graph reads all)",
            "/ui/executions/long-history",
            event_row,
        )
        measure(
            browser, "a page of that history", "/ui/executions/long-history/history?from=12001", event_row
        )
        client.register_machine("LongHold", LONG_HOLD)
        client.start_execution("LongHold", {"n": 0}, name="long-running")
        live = "/ui/executions/long-running?part=live"
        first, _ = timed(browser, live)
        print(f"live refresh of a RUNNING execution of {client.history_length('long-running'):,} events:")
        print(f"{'  first (reads the whole history)':<52}      {first * 1000:7.1f} ms")
        measure(browser, "  the next ones (read only what was added)", live, event_row)
        connection.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("executions", nargs="?", type=int, default=100_000, help="how many to store")
    main(parser.parse_args().executions)
