"""The dragon pipeline end to end in-process: orchestrators, a real RQ worker, a real Redis."""

from __future__ import annotations

import json
from collections import Counter

import redis

from orchestrator.runtime.keys import Keys
from orchestrator.runtime.loop import Orchestrator
from orchestrator.runtime.machines import register_shipped_machines
from orchestrator.runtime.sources import send_messages
from orchestrator.settings import Settings
from tests.runtime_fixtures import all_finished, dragon, drive


def test_25_records_with_5_repeats_notify_20_inserted_and_5_already_exists(
    redis_client: redis.Redis, settings: Settings
) -> None:
    keys = Keys(settings.prefix)
    register_shipped_machines(redis_client, keys)
    names = [f"Dragon {i}" for i in range(20)] + [f"Dragon {i}" for i in range(0, 10, 2)]
    send_messages(redis_client, settings, "dragons", [dragon(n) for n in names])
    orchestrators = [Orchestrator(redis_client, settings, "o1"), Orchestrator(redis_client, settings, "o2")]

    client = drive(redis_client, settings, orchestrators, all_finished(25))

    assert client.status()["executions"]["SUCCEEDED"] == 25
    notices = [
        json.loads(f[b"message"]) for _, f in redis_client.xrange(keys.topic_log("dragon-notifications"))
    ]
    assert Counter(n["Subject"] for n in notices) == {"Record inserted": 20, "Already exists": 5}
    assert Counter(n["MessageAttributes"]["dragon_name"]["Value"] for n in notices) == Counter(names)
    assert all(n["MessageAttributes"]["dragon_name"]["Value"] in n["Message"] for n in notices)
    assert redis_client.hlen(keys.dragons) == 20
    status = client.status()
    assert status["queue"] == {"name": "dragons", "depth": 0, "pending": 0, "dead_letters": 0}
    assert status["events"] == {"depth": 0, "pending": 0}
    assert status["tasks"]["depth"] == 0


def test_each_execution_is_named_after_its_message_and_has_an_aws_shaped_history(
    redis_client: redis.Redis, settings: Settings
) -> None:
    register_shipped_machines(redis_client, Keys(settings.prefix))
    (message_id,) = send_messages(redis_client, settings, "dragons", [dragon("Smaug")])

    client = drive(redis_client, settings, [Orchestrator(redis_client, settings, "o1")], all_finished(1))

    described = client.describe(message_id)
    assert described is not None
    assert described["status"] == "SUCCEEDED"
    assert described["executionArn"].endswith(f":execution:DragonPipeline:{message_id}")
    types = [event["type"] for event in client.history(message_id)]
    assert types[0] == "ExecutionStarted"
    assert types[-1] == "ExecutionSucceeded"
    for expected in ("TaskStateEntered", "ChoiceStateEntered", "ChoiceStateExited", "TaskStateExited"):
        assert expected in types
    assert [e["id"] for e in client.history(message_id)] == list(range(1, len(types) + 1))


def test_an_installation_with_a_topic_of_its_own_is_notified_there(
    redis_client: redis.Redis, settings: Settings
) -> None:
    """REDSTEP_TOPIC names where the shipped pipeline publishes, not only where subscribers listen."""
    settings = settings.model_copy(update={"topic": "hoard-news"})
    keys = Keys(settings.prefix)
    send_messages(redis_client, settings, "dragons", [dragon("Glaurung")])
    orchestrator = Orchestrator(redis_client, settings, "o1")
    register_shipped_machines(redis_client, keys, settings.topic)

    client = drive(redis_client, settings, [orchestrator], all_finished(1))

    assert client.status()["executions"]["SUCCEEDED"] == 1
    (notice,) = [json.loads(f[b"message"]) for _, f in redis_client.xrange(keys.topic_log("hoard-news"))]
    assert notice["Subject"] == "Record inserted"
    assert notice["TopicArn"].endswith(":hoard-news")
    assert redis_client.xlen(keys.topic_log("dragon-notifications")) == 0
