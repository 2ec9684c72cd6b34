"""``redstep events list | show | replay``: events moved aside are seen, and after a fix replayed once.

The scenario of the issue: a key of the wrong type makes Redis refuse the commits of 30
executions, whose task reports are moved aside; they stay RUNNING with nothing to move them,
and the doctor says so. Once the key is fixed, ``events replay --all`` puts the reports back
and every execution ends SUCCEEDED, once.
"""

from __future__ import annotations

import json
import subprocess
import sys

import redis

from orchestrator.protocol.keys import EVENT_FIELD
from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.loop import Orchestrator
from orchestrator.settings import Settings
from tests.chaos import redstep_process, stop, wait_until
from tests.doctor_helpers import assert_consistent
from tests.runtime_fixtures import dragon, one_task_machine

COUNT = 30


def redstep(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "producer.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def settings_of(env: dict[str, str]) -> Settings:
    return Settings(redis_url=env["REDIS_URL"], prefix=env["REDSTEP_PREFIX"])


def test_30_executions_whose_reports_were_moved_aside_during_a_wrong_type_key_end_succeeded_once_replayed(
    subprocess_env: dict[str, str], redis_client: redis.Redis
) -> None:
    settings = settings_of(subprocess_env)
    client, keys = Client(redis_client, settings), Keys(settings.prefix)
    client.register_machine("One", one_task_machine())
    names = [f"dragon-{i}" for i in range(COUNT)]
    for name in names:
        client.start_execution("One", dragon(name), name=name)
    # Given the index of SUCCEEDED executions overwritten with a string,
    redis_client.set(keys.status("SUCCEEDED"), "overwritten by mistake")
    orchestrator = redstep_process(subprocess_env, "orchestrator")
    worker = redstep_process(subprocess_env, "worker")
    try:
        # when the tasks report, every commit is refused and the reports are moved aside,
        wait_until(lambda: redis_client.xlen(keys.malformed) == COUNT, 90, "30 reports to be moved aside")
        listed = json.loads(redstep(subprocess_env, "events", "list", "--json").stdout)
        assert sorted(event["execution"] for event in listed) == sorted(names)
        assert all(event["event_type"] == "TaskSucceeded" for event in listed)
        assert all("wrong type" in event["reason"] and event["delivery_count"] == 1 for event in listed)
        assert all(client.describe(name)["status"] == "RUNNING" for name in names)

        # so the doctor finds them RUNNING with nothing to move them, and the broken key;
        doctor = json.loads(redstep(subprocess_env, "doctor", "--json").stdout)
        stuck = {p["subject"] for p in doctor["problems"] if p["invariant"] == "something-moves-it"}
        assert stuck == set(names)
        assert {(p["subject"], p["invariant"]) for p in doctor["problems"]} - {
            (n, "something-moves-it") for n in names
        } == {(keys.status("SUCCEEDED"), "index-type")}
        assert all(
            "redstep events replay" in p["explanation"] for p in doctor["problems"] if p["subject"] in stuck
        )

        # then once the key is fixed and the events replayed, all 30 end SUCCEEDED,
        redis_client.delete(keys.status("SUCCEEDED"))
        replayed = redstep(subprocess_env, "events", "replay", "--all")
        assert replayed.returncode == 0, replayed.stderr
        assert replayed.stdout.strip() == f"replayed {COUNT} event(s)"
        for name in names:
            assert client.wait(name, timeout=60)["status"] == "SUCCEEDED"
    finally:
        stop(worker)
        stop(orchestrator)
    # each once, and nothing is left moved aside or broken.
    for name in names:
        types = [event["type"] for event in client.history(name)]
        assert types.count("LambdaFunctionSucceeded") == 1 and types.count("ExecutionSucceeded") == 1
    assert json.loads(redstep(subprocess_env, "events", "list", "--json").stdout) == []
    assert redstep(subprocess_env, "doctor").returncode == 0
    assert_consistent(redis_client, settings)


def test_an_event_replayed_twice_or_delivered_again_after_its_replay_is_applied_once(
    subprocess_env: dict[str, str], redis_client: redis.Redis
) -> None:
    settings = settings_of(subprocess_env)
    client, keys = Client(redis_client, settings), Keys(settings.prefix)
    client.register_machine("One", one_task_machine())
    client.start_execution("One", {}, name="solo")
    orchestrator = Orchestrator(redis_client, settings, "o1")
    # Given the task's report moved aside because an index every execution shares was not a sorted set,
    job = redis_client.lpop(keys.task_queue).decode()
    [task] = json.loads(redis_client.hget(Keys.rq_job(job), "data"))[2][0]
    report = {"type": "TaskSucceeded", "execution": "solo", "token": task["token"], "output": {"ok": 1}}
    redis_client.xadd(keys.events, {EVENT_FIELD: json.dumps(report)})
    redis_client.set(keys.status("SUCCEEDED"), "not a sorted set")
    orchestrator.run_once()
    [moved] = json.loads(redstep(subprocess_env, "events", "list", "--json").stdout)
    shown = redstep(subprocess_env, "events", "show", moved["id"], "--json")
    assert json.loads(shown.stdout)["event"] == report
    assert "could not be committed" in moved["reason"]

    # when the index is mended and the event replayed twice,
    redis_client.delete(keys.status("SUCCEEDED"))
    first = redstep(subprocess_env, "events", "replay", moved["id"])
    orchestrator.run_once()
    second = redstep(subprocess_env, "events", "replay", moved["id"])

    # then the first replay applies it and the second finds nothing to replay;
    assert first.returncode == 0 and first.stdout.strip() == "replayed 1 event(s)"
    assert second.returncode == 1 and f"moved-aside event(s) not found: {moved['id']}" in second.stderr
    assert client.describe("solo")["status"] == "SUCCEEDED"
    history = client.history("solo")

    # and the same event delivered once more (a replay is at-least-once too) changes nothing.
    redis_client.xadd(keys.events, {EVENT_FIELD: json.dumps(report)})
    orchestrator.run_once()
    assert client.history("solo") == history
    assert [event["type"] for event in history].count("ExecutionSucceeded") == 1
    assert client.describe("solo")["output"] == {"ok": 1}
    assert_consistent(redis_client, settings)


def test_showing_or_replaying_an_id_that_is_not_a_moved_aside_event_is_not_found(
    subprocess_env: dict[str, str],
) -> None:
    shown = redstep(subprocess_env, "events", "show", "1-1")
    bogus = redstep(subprocess_env, "events", "show", "not-an-id")
    replayed = redstep(subprocess_env, "events", "replay", "not-an-id")
    usage = redstep(subprocess_env, "events", "replay")

    assert shown.returncode == 1 and "moved-aside event 1-1 not found" in shown.stderr
    assert bogus.returncode == 1
    assert replayed.returncode == 1 and "not found: not-an-id" in replayed.stderr
    assert usage.returncode == 2
