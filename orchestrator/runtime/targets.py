"""Which queues and topics exist, for the messages and notifications service tasks send.

An sqs:sendMessage task for a queue that does not exist fails as SendMessage refuses it, and an
sns:publish task for a topic that does not exist as Publish refuses it (orchestrator.services).
The orchestrator asks on every send; a Map of them would cost a round trip per item, so a queue
or topic found is taken as existing for a second more (a deleted one may take a message
meanwhile, as SQS's and SNS's may for a while after they are deleted). One not found is asked
about every time, so one created a moment ago is found at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from orchestrator.runtime.keys import Keys
from orchestrator.runtime.queues import Queues
from orchestrator.settings import Settings

REMEMBER_SECONDS = 1.0
REMEMBERED = 1000  # the most names one Remembered keeps at once


class Remembered:
    """``exists``'s answers, each name found remembered for ``remember_seconds``."""

    def __init__(self, exists: Callable[[str], bool], remember_seconds: float = REMEMBER_SECONDS) -> None:
        self._exists = exists
        self.remember_seconds = remember_seconds
        self._found: dict[str, float] = {}  # name -> time.monotonic() until which it is taken as existing

    def __call__(self, name: str) -> bool:
        now = time.monotonic()
        if self._found.get(name, 0.0) > now:
            return True
        if not self._exists(name):
            self._found.pop(name, None)
            return False
        if len(self._found) >= REMEMBERED:
            self._found.clear()
        self._found[name] = now + self.remember_seconds
        return True


class ServiceTargets:
    """The queues and topics of one installation, as service tasks find them (services.Targets).

    Args:
        redis_client: the connection.
        settings: the prefix, and the pipeline's own queue and topic (which always exist).
        remember_seconds: how long a queue or topic found is taken as existing; 0 asks every time.
    """

    def __init__(
        self, redis_client: redis.Redis, settings: Settings, remember_seconds: float = REMEMBER_SECONDS
    ) -> None:
        self.redis = redis_client
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self._queues = Remembered(Queues(redis_client, settings).exists, remember_seconds)
        self._topics = Remembered(self._topic_made, remember_seconds)

    def queue_exists(self, name: str) -> bool:
        return self._queues(name)

    def topic_exists(self, name: str) -> bool:
        return self._topics(name)

    def _topic_made(self, name: str) -> bool:
        """Whether CreateTopic made topic ``name``, or it is the pipeline's own."""
        return name == self.settings.topic or bool(self.redis.hexists(self.keys.sns_topics, name))
