"""Notifications (SNS role): envelopes, and a late subscriber's replay without gap or duplicate."""

from __future__ import annotations

import json
import re
import threading
import time

import redis

from orchestrator.runtime.keys import Keys
from orchestrator.runtime.notifications import subscribe
from orchestrator.runtime.store import Store
from orchestrator.services import envelope, topic_name
from orchestrator.settings import Settings

KEYS = Keys("t")


def publish(redis_client: redis.Redis, subjects: list[str]) -> list[str]:
    store, ids = Store(redis_client, KEYS), []
    for subject in subjects:
        commit = store.new_commit()
        message = envelope({"TopicArn": "arn:aws:sns:us-east-1:000000000000:news", "Subject": subject,
                            "Message": subject}, time.time())  # fmt: skip
        commit.publish("news", message, 1000)
        store.commit(commit)
        ids.append(message["MessageId"])
    return ids


def test_envelope_is_shaped_like_an_sns_message() -> None:
    parameters = {
        "TopicArn": "arn:aws:sns:us-east-1:000000000000:dragon-notifications",
        "Subject": "Record inserted",
        "Message": {"dragon": "Puff"},
        "MessageAttributes": {"dragon_name": {"DataType": "String", "StringValue": "Puff"}},
    }

    message = envelope(parameters, 1_700_000_000.25)

    assert message["Message"] == json.dumps({"dragon": "Puff"})
    assert message["Timestamp"] == "2023-11-14T22:13:20.250Z"
    assert re.fullmatch(r"[0-9a-f-]{36}", message["MessageId"])
    # Publish takes DataType/StringValue; SNS delivers Type/Value.
    assert message["MessageAttributes"] == {"dragon_name": {"Type": "String", "Value": "Puff"}}
    assert topic_name(message["TopicArn"]) == "dragon-notifications"


def test_a_late_subscriber_replays_the_log_then_gets_live_messages_without_gap_or_duplicate(
    redis_client: redis.Redis, settings: Settings
) -> None:
    earlier = publish(redis_client, ["one", "two", "three"])
    received: list[dict] = []
    subscribed = threading.Event()

    def listen() -> None:
        for message in subscribe(redis_client, settings, "news", replay=True, poll_seconds=0.05):
            received.append(message)
            subscribed.set()
            if len(received) == 6:
                return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert subscribed.wait(5)
    later = publish(redis_client, ["four", "five", "six"])
    listener.join(5)

    assert [m["MessageId"] for m in received] == earlier + later
    assert [m["Subject"] for m in received] == ["one", "two", "three", "four", "five", "six"]


def test_the_topic_log_is_capped(redis_client: redis.Redis) -> None:
    store = Store(redis_client, KEYS)
    for _ in range(3):
        commit = store.new_commit()
        for i in range(500):
            commit.publish("news", {"MessageId": str(i)}, 100)
        store.commit(commit)

    assert redis_client.xlen(KEYS.topic_log("news")) < 400
