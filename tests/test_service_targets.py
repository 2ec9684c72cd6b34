"""Which queues and topics an orchestrator's service tasks find (runtime.targets.ServiceTargets)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis

from orchestrator.runtime.keys import Keys
from orchestrator.runtime.queues import Queues
from orchestrator.runtime.targets import ServiceTargets
from orchestrator.settings import Settings


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The queues Redis was asked about, in order."""
    names: list[str] = []
    exists = Queues.exists

    def counted(queues: Queues, name: str) -> Any:
        names.append(name)
        return exists(queues, name)

    monkeypatch.setattr(Queues, "exists", counted)
    return names


def test_a_queue_found_is_remembered_a_while_and_then_asked_about_again(
    redis_client: redis.Redis, settings: Settings, asked: list[str]
) -> None:
    queues = Queues(redis_client, settings)
    queues.create("outbox", {})
    targets = ServiceTargets(redis_client, settings, remember_seconds=0.2)

    assert all(targets.queue_exists("outbox") for _ in range(50))
    assert asked == ["outbox"]  # one round trip for fifty sends

    queues.delete("outbox")
    assert targets.queue_exists("outbox")  # as SQS may still take a message just after DeleteQueue
    time.sleep(0.3)
    assert not targets.queue_exists("outbox")


def test_a_queue_not_found_is_asked_about_every_time_so_a_new_one_is_found_at_once(
    redis_client: redis.Redis, settings: Settings, asked: list[str]
) -> None:
    targets = ServiceTargets(redis_client, settings)

    assert not targets.queue_exists("later") and not targets.queue_exists("later")
    Queues(redis_client, settings).create("later", {})

    assert targets.queue_exists("later")
    assert asked == ["later"] * 3
    assert targets.queue_exists(settings.source_queue)  # the pipeline's own queue always exists


def test_a_topic_exists_once_created_and_the_pipelines_own_always(
    redis_client: redis.Redis, settings: Settings
) -> None:
    targets = ServiceTargets(redis_client, settings, remember_seconds=0)

    assert targets.topic_exists(settings.topic)
    assert not targets.topic_exists("news")
    redis_client.hset(Keys(settings.prefix).sns_topics, "news", json.dumps({"attributes": {}, "tags": []}))
    assert targets.topic_exists("news")
