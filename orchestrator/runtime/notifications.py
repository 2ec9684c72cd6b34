"""Notifications (the SNS role): SNS-shaped envelopes on a pub/sub channel and a capped stream.

Pub/sub is at-most-once, so each envelope also goes to the topic's log stream; a subscriber
with ``replay`` reads the log first and then the channel, and drops by MessageId what it
sees twice, so it misses nothing that was published after it subscribed and nothing the
log still holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import redis

from orchestrator.protocol.decoding import loads
from orchestrator.runtime.keys import Keys
from orchestrator.services import topic_name
from orchestrator.settings import Settings


def decoded(raw: bytes | str | None) -> dict[str, Any] | None:
    """The envelope ``raw`` holds, or None when it is not one.

    Anyone who can PUBLISH on the channel or XADD to the log can put anything there; a
    subscriber skips what is not an envelope instead of dying on it.
    """
    if raw is None:
        return None
    try:
        message = loads(raw)
    except ValueError:
        return None
    if not isinstance(message, dict) or not isinstance(message.get("MessageId"), str):
        return None
    return message


def subscribe(
    redis_client: redis.Redis,
    settings: Settings,
    topic: str | None = None,
    replay: bool = False,
    poll_seconds: float = 0.5,
) -> Iterator[dict[str, Any]]:
    """The topic's envelopes, as they arrive; with ``replay``, first what its log holds.

    Args:
        redis_client: the connection (a pub/sub connection is taken from its pool).
        settings: the prefix and the default topic.
        topic: the topic's name or ARN (default: ``settings.topic``).
        replay: start with every envelope the topic's log stream still holds.
        poll_seconds: longest wait for a live message before the generator checks in again.
    """
    keys = Keys(settings.prefix)
    name = topic_name(topic or settings.topic)
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    # Subscribing before reading the log leaves no gap between the two.
    pubsub.subscribe(keys.topic(name))
    seen: set[str] = set()
    try:
        if replay:
            for _, fields in redis_client.xrange(keys.topic_log(name)):
                message = decoded(fields.get(b"message"))
                if message is not None:
                    seen.add(message["MessageId"])
                    yield message
        while True:
            raw = pubsub.get_message(timeout=poll_seconds)
            if raw is None or raw.get("type") != "message":
                continue
            message = decoded(raw["data"])
            if message is None:
                continue
            if message["MessageId"] in seen:
                seen.discard(message["MessageId"])  # a duplicate comes at most once
                continue
            yield message
    finally:
        pubsub.close()


DELIVERY_GROUP = "sns-delivery"
"""The consumer group on a topic's log through which ``serve`` delivers to subscriptions."""


def publish(redis_client: redis.Redis, settings: Settings, envelope: dict[str, Any]) -> None:
    """Publish ``envelope`` as the orchestrator does: on the topic's channel and in its capped log.

    One MULTI/EXEC, so a subscriber and the subscriptions' delivery see the same messages.
    """
    keys = Keys(settings.prefix)
    name = topic_name(envelope["TopicArn"])
    message = json.dumps(envelope)
    pipe = redis_client.pipeline(transaction=True)
    pipe.publish(keys.topic(name), message)
    length = settings.notification_stream_length
    pipe.xadd(keys.topic_log(name), {"message": message}, maxlen=length, approximate=True)
    pipe.execute()


def follow_for_delivery(redis_client: redis.Redis, settings: Settings, topic: str) -> None:
    """Make the delivery group on the topic's log (and the log), starting after what it holds now.

    The orchestrators append every notification to the log in the commit that publishes it;
    the group remembers how far delivery got, so a message published while no ``serve`` runs
    is delivered when one starts (while the capped log still holds it).
    """
    log = Keys(settings.prefix).topic_log(topic)
    try:
        redis_client.xgroup_create(log, DELIVERY_GROUP, id="$", mkstream=True)
    except redis.ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise
