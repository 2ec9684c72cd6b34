"""An iteration's commits in turns: the next part is computed while Redis applies the one before.

Each test runs one real orchestrator iteration on a real Redis over more executions than one
part holds (runtime.overlap.TURN_EXECUTIONS), so its events are committed in several parts.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.loop import Orchestrator
from orchestrator.runtime.machines import register_shipped_machines
from orchestrator.runtime.overlap import TURN_EXECUTIONS
from orchestrator.runtime.sources import send_messages
from orchestrator.runtime.store import SentCommit
from orchestrator.settings import Settings
from tests.runtime_fixtures import dragon, one_task_machine, queued_tasks

KEYS = Keys("t")
EXECUTIONS = 2 * TURN_EXECUTIONS + 50  # three parts


@pytest.fixture
def client(redis_client: redis.Redis, settings: Settings) -> Client:
    return Client(redis_client, settings)


def executions_with_reports(redis_client: redis.Redis, settings: Settings, client: Client) -> list[str]:
    """EXECUTIONS running executions of one task each, every task's success waiting on the stream."""
    client.register_machine("One", one_task_machine())
    names = [client.start_execution("One", {}, name=f"e{n}") for n in range(EXECUTIONS)]
    by_execution = {task["execution"]: task for task in queued_tasks(redis_client, settings)}
    for name in names:
        report = {
            "type": "TaskSucceeded",
            "execution": name,
            "token": by_execution[name]["token"],
            "output": name,
        }
        redis_client.xadd(KEYS.events, {"event": json.dumps(report)})
    return names


def succeeded_once(client: Client, name: str) -> bool:
    """Whether the execution succeeded with its own output, its task's success recorded once."""
    described = client.describe(name)
    succeeded = [e for e in client.history(name) if e["type"] == "LambdaFunctionSucceeded"]
    return described["status"] == "SUCCEEDED" and described["output"] == name and len(succeeded) == 1


def test_a_big_iteration_computes_each_part_while_the_one_before_is_committed(
    redis_client: redis.Redis, settings: Settings, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = executions_with_reports(redis_client, settings, client)
    register_shipped_machines(redis_client, KEYS)  # the source queue's records start DragonPipeline
    send_messages(redis_client, settings, "dragons", [dragon(f"Puff{n}") for n in range(20)])
    orchestrator = Orchestrator(redis_client, settings, "o1")
    order: list[str] = []
    real_send, real_outcome = orchestrator.store.send, SentCommit.outcome

    def send(batch: Any) -> SentCommit:
        order.append("send")
        return real_send(batch)

    def outcome(sent: SentCommit) -> Any:
        order.append("outcome")
        return real_outcome(sent)

    orchestrator.store.send = send  # type: ignore[method-assign]
    monkeypatch.setattr(SentCommit, "outcome", outcome)
    consumed = orchestrator.run_once()

    assert consumed == EXECUTIONS + 20
    # The starts, then three parts of events: every commit but the last is sent before the
    # outcome of the one before it is read.
    assert order == ["send", "send", "outcome", "send", "outcome", "send", "outcome", "outcome"]
    assert all(succeeded_once(client, name) for name in names)
    assert len(client.list_executions(status="RUNNING")) == 20
    assert redis_client.xlen(KEYS.events) == 0
    assert redis_client.xlen(KEYS.queue("dragons")) == 0


def test_a_part_whose_commit_redis_refuses_fails_alone_and_every_other_part_lands(
    redis_client: redis.Redis, settings: Settings, client: Client
) -> None:
    names = executions_with_reports(redis_client, settings, client)
    bad = names[TURN_EXECUTIONS + 7]  # in the second part
    redis_client.set(KEYS.history(bad), "not a list")  # no RPUSH on it can ever succeed

    Orchestrator(redis_client, settings, "o1").run_once()

    assert all(succeeded_once(client, name) for name in names if name != bad)
    failed = client.describe(bad)
    assert (failed["status"], failed["error"]) == ("FAILED", "States.Runtime")
    assert failed["cause"].startswith("the commit of this transition failed")
    assert redis_client.xlen(KEYS.events) == 0
    assert redis_client.xlen(KEYS.malformed) == 0


def test_a_commit_whose_reply_is_lost_after_it_landed_is_applied_once(
    redis_client: redis.Redis, settings: Settings, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = executions_with_reports(redis_client, settings, client)
    orchestrator = Orchestrator(redis_client, settings, "o1")
    real_outcome, lost = SentCommit.outcome, []

    def outcome_lost_once(sent: SentCommit) -> Any:
        conflicts = real_outcome(sent)  # the commit landed...
        if not lost:
            lost.append(conflicts)
            raise redis.ConnectionError("connection lost before the reply was read")  # ...unseen
        return conflicts

    monkeypatch.setattr(SentCommit, "outcome", outcome_lost_once)
    orchestrator.run_once()

    assert lost == [[]]
    assert all(succeeded_once(client, name) for name in names)
    assert redis_client.xlen(KEYS.events) == 0


def test_a_commit_that_could_not_be_sent_is_done_again_and_lands(
    redis_client: redis.Redis, settings: Settings, client: Client
) -> None:
    names = executions_with_reports(redis_client, settings, client)
    orchestrator = Orchestrator(redis_client, settings, "o1")
    real_send, refused = orchestrator.store.send, []

    def send_failing_once(batch: Any) -> SentCommit:
        if not refused:
            refused.append(batch)
            raise redis.ConnectionError("connection lost while sending")
        return real_send(batch)

    orchestrator.store.send = send_failing_once  # type: ignore[method-assign]
    orchestrator.run_once()

    assert refused
    assert all(succeeded_once(client, name) for name in names)
    assert redis_client.xlen(KEYS.events) == 0
