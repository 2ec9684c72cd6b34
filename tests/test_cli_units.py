"""The CLI's small pieces without Redis: notification lines, the Redis address, the supervisor."""

from __future__ import annotations

import ast
import io
import json
import sys
import threading
from pathlib import Path

import pytest

from producer.cli.address import configured_url, url_from_parts
from producer.cli.stack import Child, Stack
from producer.cli.subscribe_view import human_line, print_messages
from producer.cli.up_api import ApiPlanError, export_lines, plan_api

ENVELOPE = {
    "MessageId": "m1",
    "TopicArn": "arn:aws:sns:us-east-1:000000000000:dragon-notifications",
    "Subject": "Record inserted",
    "Message": "Dragon Ashgrave\nwas inserted",
    "Timestamp": "2026-11-27T23:17:14.932Z",
    "MessageAttributes": {},
}


def test_a_notification_reads_as_one_line_with_time_subject_and_message() -> None:
    assert human_line(ENVELOPE) == "2026-11-27T23:17:14.932Z  Record inserted  Dragon Ashgrave was inserted"


def test_json_form_prints_one_envelope_per_line_and_stops_after_count() -> None:
    out = io.StringIO()
    printed = print_messages(iter([ENVELOPE] * 5), out, as_json=True, count=3)
    assert printed == 3
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [ENVELOPE] * 3


def test_the_redis_url_is_made_from_its_parts_with_the_password_encoded() -> None:
    env = {"REDSTEP_REDIS_HOST": "redis", "REDSTEP_REDIS_PORT": "6380", "REDSTEP_REDIS_PASSWORD": "p@ss/word"}
    assert url_from_parts(env) == "redis://:p%40ss%2Fword@redis:6380/0"
    assert url_from_parts({}) is None


def test_the_redis_url_carries_the_acl_user_when_one_is_given() -> None:
    env = {"REDSTEP_REDIS_HOST": "redis", "REDSTEP_REDIS_USER": "redstep", "REDSTEP_REDIS_PASSWORD": "s3cret"}
    assert url_from_parts(env) == "redis://redstep:s3cret@redis:6379/0"


def test_redis_url_wins_over_the_parts_and_an_empty_one_counts_as_unset() -> None:
    parts = {"REDSTEP_REDIS_HOST": "redis"}
    assert configured_url(None, {**parts, "REDIS_URL": "redis://elsewhere:1/0"}) == "redis://elsewhere:1/0"
    assert configured_url(None, {**parts, "REDIS_URL": ""}) == "redis://redis:6379/0"
    assert configured_url("redis://flag:2/0", {"REDIS_URL": "redis://env:1/0"}) == "redis://flag:2/0"
    assert configured_url(None, {}) is None


def test_the_supervisor_restarts_a_child_then_gives_up_when_it_keeps_failing_on_start() -> None:
    stack = Stack(restart_backoff_seconds=0, max_quick_exits=3, redis_url="redis://unused")
    stack.children = [Child("flaky", [sys.executable, "-c", "raise SystemExit(3)"])]
    stack._spawn(stack.children[0])

    code = stack.run_until(threading.Event(), poll_seconds=0.05)

    assert code == 1
    assert stack.children[0].quick_exits == 3
    stack.stop()


def test_stop_terminates_every_child_and_returns_once_they_are_gone() -> None:
    stack = Stack(grace_seconds=5, redis_url="redis://unused")
    stack.children = [
        Child(f"sleeper-{i}", [sys.executable, "-c", "import time; time.sleep(60)"]) for i in (1, 2)
    ]
    for child in stack.children:
        stack._spawn(child)

    stack.stop()

    assert all(child.process is not None and child.process.returncode is not None for child in stack.children)


def test_execution_dates_read_as_utc_times_in_the_human_table() -> None:
    from rich.console import Console

    from producer.cli.views import executions_table

    console = Console(width=200, record=True)
    console.print(executions_table([{"name": "e1", "status": "SUCCEEDED", "startDate": 1795822158.466}]))
    assert "2026-11-27 23:29:18.466" in console.export_text()


def test_up_makes_a_new_random_key_pair_for_its_api_only_when_none_is_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("REDSTEP_ACCESS_KEY_ID", "REDSTEP_SECRET_ACCESS_KEY", "REDSTEP_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    first, second = plan_api("127.0.0.1", 0), plan_api("127.0.0.1", 0)
    assert first.secret and second.secret and first.secret != second.secret
    assert first.access_key_id != second.access_key_id and len(first.access_key_id) == 20
    assert first.env == {
        "REDSTEP_ACCESS_KEY_ID": first.access_key_id,
        "REDSTEP_SECRET_ACCESS_KEY": first.secret,
    }
    assert first.port > 0 and first.serve_args() == ["--host", "127.0.0.1", "--port", str(first.port)]
    assert export_lines(first) == [
        f"export AWS_ENDPOINT_URL=http://127.0.0.1:{first.port}",
        "export AWS_DEFAULT_REGION=us-east-1",
        f"export AWS_ACCESS_KEY_ID={first.access_key_id}",
        f"export AWS_SECRET_ACCESS_KEY={first.secret}",
    ]
    assert first.secret not in repr(first)

    monkeypatch.setenv("REDSTEP_ACCESS_KEY_ID", "AKIDMINE")
    monkeypatch.setenv("REDSTEP_SECRET_ACCESS_KEY", "my-own-secret")
    monkeypatch.setenv("REDSTEP_REGION", "eu-west-3")
    mine = plan_api("0.0.0.0", 0)
    assert (mine.secret, mine.env, mine.access_key_id) == (None, {}, "AKIDMINE")
    assert mine.endpoint == f"http://127.0.0.1:{mine.port}"
    lines = export_lines(mine)
    assert lines[:3] == [
        f"export AWS_ENDPOINT_URL=http://127.0.0.1:{mine.port}",
        "export AWS_DEFAULT_REGION=eu-west-3",
        "export AWS_ACCESS_KEY_ID=AKIDMINE",
    ]
    assert "my-own-secret" not in "\n".join(lines)

    monkeypatch.delenv("REDSTEP_SECRET_ACCESS_KEY")
    with pytest.raises(ApiPlanError, match="set both REDSTEP_ACCESS_KEY_ID and REDSTEP_SECRET_ACCESS_KEY"):
        plan_api("127.0.0.1", 0)


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at its top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_cli_imports_worker_only_to_run_functions_and_the_library_leaves_the_cli_alone() -> None:
    producer = Path(__file__).resolve().parents[1] / "producer"
    importing_worker = sorted(
        path.name
        for path in (producer / "cli").glob("*.py")
        if any(m == "worker" or m.startswith("worker.") for m in imported_modules(path))
    )
    # `redstep worker` is a worker process; `redstep run --local` runs registered functions in-process.
    assert importing_worker == ["machines.py", "processes.py"]
    for path in producer.glob("*.py"):
        outside = {m for m in imported_modules(path) if m.split(".")[0] in ("worker", "typer", "rich")}
        outside |= {m for m in imported_modules(path) if m.startswith("producer.cli")}
        assert not outside, f"producer/{path.name}, a library module, imports {sorted(outside)}"
