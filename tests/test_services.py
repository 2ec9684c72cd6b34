"""The integrations the orchestrator carries out itself: sns:publish and sqs:sendMessage."""

from __future__ import annotations

import hashlib
import json

import redis

from orchestrator.asl.definition import StateMachine
from orchestrator.local import LocalRunner
from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import BODY_FIELD, Keys
from orchestrator.runtime.loop import Orchestrator
from orchestrator.settings import Settings
from tests.runtime_fixtures import all_finished, drive

SEND = {
    "StartAt": "Send",
    "States": {
        "Send": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage",
            "Parameters": {
                "QueueUrl": "https://sqs.us-east-1.amazonaws.com/000000000000/outbox",
                "MessageBody.$": "$.record",
            },
            "ResultPath": "$.sent",
            "End": True,
        }
    },
}
RECORD = {"record": {"dragon_name_str": "Puff", "family_str": "green"}}


def test_a_local_send_message_returns_what_sqs_returns_and_records_the_message() -> None:
    result = LocalRunner(StateMachine.parse(SEND, "Send")).run(RECORD)

    assert result.status == "SUCCEEDED"
    sent = result.output["sent"]
    assert sent["MD5OfMessageBody"] == hashlib.md5(json.dumps(RECORD["record"]).encode()).hexdigest()
    assert sent["MessageId"]
    assert result.effects == [{"kind": "send", "target": "outbox", "payload": RECORD["record"]}]


def test_a_send_message_on_the_stack_puts_the_body_on_the_named_queue_in_the_same_commit(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client = Client(redis_client, settings)
    client.register_machine("Send", SEND)
    name = client.start_execution("Send", RECORD)

    drive(
        redis_client,
        settings,
        [Orchestrator(redis_client, settings, "o1")],
        all_finished(1),
        with_worker=False,
    )

    described = client.describe(name)
    assert described is not None and described["status"] == "SUCCEEDED"
    entries = redis_client.xrange(Keys(settings.prefix).queue("outbox"))
    assert [json.loads(fields[BODY_FIELD.encode()]) for _, fields in entries] == [RECORD["record"]]
    assert (
        described["output"]["sent"]["MD5OfMessageBody"]
        == hashlib.md5(json.dumps(RECORD["record"]).encode()).hexdigest()
    )


def test_a_publish_gives_the_same_result_shape_locally_and_on_the_stack(
    redis_client: redis.Redis, settings: Settings
) -> None:
    publish = {
        "StartAt": "Notify",
        "States": {
            "Notify": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish",
                "Parameters": {"TopicArn": "arn:aws:sns:us-east-1:000000000000:news", "Message.$": "$"},
                "End": True,
            }
        },
    }
    local = LocalRunner(StateMachine.parse(publish, "Notify")).run({"hello": "world"})
    client = Client(redis_client, settings)
    client.register_machine("Notify", publish)
    name = client.start_execution("Notify", {"hello": "world"})
    drive(
        redis_client,
        settings,
        [Orchestrator(redis_client, settings, "o1")],
        all_finished(1),
        with_worker=False,
    )

    on_stack = client.describe(name)
    assert on_stack is not None and local.status == on_stack["status"] == "SUCCEEDED"
    assert (
        set(local.output)
        == set(on_stack["output"])
        >= {"MessageId", "SdkHttpMetadata", "SdkResponseMetadata"}
    )
    assert local.effects[0]["kind"] == "publish" and local.effects[0]["target"] == "news"
    assert json.loads(local.effects[0]["payload"]["Message"]) == {"hello": "world"}
