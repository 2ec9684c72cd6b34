"""Which queues an orchestrator's sqs:sendMessage tasks may send to (runtime.queues.RememberedQueues)."""

from __future__ import annotations

import time

import redis

from orchestrator.runtime.queues import Queues, RememberedQueues
from orchestrator.settings import Settings


class CountedQueues(Queues):
    """Queues that count how often Redis was asked whether one exists."""

    asked = 0

    def exists(self, name: str) -> bool:
        self.asked += 1
        return super().exists(name)


def test_a_queue_found_is_remembered_a_while_and_then_asked_about_again(
    redis_client: redis.Redis, settings: Settings
) -> None:
    queues = CountedQueues(redis_client, settings)
    queues.create("outbox", {})
    remembered = RememberedQueues(queues, remember_seconds=0.2)

    assert all(remembered.exists("outbox") for _ in range(50))
    assert queues.asked == 1  # one round trip for fifty sends

    queues.delete("outbox")
    assert remembered.exists("outbox")  # as SQS may still take a message just after DeleteQueue
    time.sleep(0.3)
    assert not remembered.exists("outbox")


def test_a_queue_not_found_is_asked_about_every_time_so_a_new_one_is_found_at_once(
    redis_client: redis.Redis, settings: Settings
) -> None:
    queues = CountedQueues(redis_client, settings)
    remembered = RememberedQueues(queues)

    assert not remembered.exists("later") and not remembered.exists("later")
    queues.create("later", {})

    assert remembered.exists("later")
    assert queues.asked == 3
    assert remembered.exists(settings.source_queue)  # the pipeline's own queue always exists
