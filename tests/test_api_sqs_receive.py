"""ReceiveMessage, DeleteMessage and ChangeMessageVisibility through boto3, on queues of one's own."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from typing import Any

import pytest
import redis

from tests.api_fixtures import ACCOUNT, FINISH_SECONDS, ApiStack, serve_only
from tests.chaos import wait_until
from tests.test_api_sqs import sqs_client

__all__ = ["serve_only"]


@pytest.fixture(scope="module")
def sqs(serve_only: ApiStack) -> Any:
    return sqs_client(serve_only)


@pytest.fixture
def queue(sqs: Any) -> str:
    return str(sqs.create_queue(QueueName=f"inbox-{uuid.uuid4().hex[:10]}")["QueueUrl"])


def receive(sqs: Any, url: str, **options: Any) -> list[dict[str, Any]]:
    options = {"WaitTimeSeconds": 0, "AttributeNames": ["All"], **options}
    return list(sqs.receive_message(QueueUrl=url, **options).get("Messages", []))


def counts(sqs: Any, url: str) -> tuple[str, str]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return found["ApproximateNumberOfMessages"], found["ApproximateNumberOfMessagesNotVisible"]


def test_a_received_message_is_what_was_sent_and_is_gone_once_deleted(sqs: Any, queue: str) -> None:
    attributes = {
        "kind": {"DataType": "String", "StringValue": "order"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff"},
    }
    bodies = ['{ "spaced":  [1, 2] }', "plain text, not JSON"]
    sent = [
        sqs.send_message(QueueUrl=queue, MessageBody=body, MessageAttributes=attributes) for body in bodies
    ]

    received = receive(sqs, queue, MaxNumberOfMessages=10, MessageAttributeNames=["All"])

    assert [message["Body"] for message in received] == bodies
    for message, answer in zip(received, sent, strict=True):
        assert message["MessageId"] == answer["MessageId"]
        assert message["MD5OfBody"] == hashlib.md5(message["Body"].encode()).hexdigest()
        assert message["MessageAttributes"] == attributes
        assert message["MD5OfMessageAttributes"] == answer["MD5OfMessageAttributes"]
        assert message["Attributes"]["ApproximateReceiveCount"] == "1"
        assert message["Attributes"]["SenderId"] == ACCOUNT
    assert counts(sqs, queue) == ("0", "2")
    for message in received:
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    assert counts(sqs, queue) == ("0", "0")
    assert receive(sqs, queue) == []


def test_message_attributes_come_back_only_as_asked(sqs: Any, queue: str) -> None:
    attributes = {
        "order.id": {"DataType": "Number", "StringValue": "7"},
        "order.kind": {"DataType": "String", "StringValue": "x"},
        "other": {"DataType": "String", "StringValue": "y"},
    }
    sqs.send_message(QueueUrl=queue, MessageBody="m", MessageAttributes=attributes)
    [message] = receive(sqs, queue, MessageAttributeNames=["order.*"], AttributeNames=[])
    assert set(message["MessageAttributes"]) == {"order.id", "order.kind"}
    assert "Attributes" not in message
    sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    [again] = receive(sqs, queue)
    assert "MessageAttributes" not in again and "MD5OfMessageAttributes" not in again


def test_an_invisible_message_is_not_received_until_its_visibility_is_changed(sqs: Any, queue: str) -> None:
    sqs.send_message(QueueUrl=queue, MessageBody="once")
    [first] = receive(sqs, queue, VisibilityTimeout=600)
    assert receive(sqs, queue) == []
    assert counts(sqs, queue) == ("0", "1")

    sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0)
    [second] = receive(sqs, queue, VisibilityTimeout=600)

    assert second["MessageId"] == first["MessageId"]
    assert second["Attributes"]["ApproximateReceiveCount"] == "2"


def test_a_message_turns_visible_again_when_its_visibility_timeout_runs_out(sqs: Any, queue: str) -> None:
    sqs.send_message(QueueUrl=queue, MessageBody="comes back")
    [first] = receive(sqs, queue, VisibilityTimeout=1)
    # A long poll returns as soon as the message is visible again.
    [second] = receive(sqs, queue, WaitTimeSeconds=20)
    assert second["MessageId"] == first["MessageId"]
    assert second["Attributes"]["ApproximateReceiveCount"] == "2"


def test_a_long_poll_returns_a_message_sent_while_it_waits(
    serve_only: ApiStack, sqs: Any, queue: str
) -> None:
    got: list[dict[str, Any]] = []
    waiting = threading.Thread(
        target=lambda: got.extend(receive(sqs_client(serve_only), queue, WaitTimeSeconds=20))
    )
    waiting.start()
    connection = redis.Redis.from_url(serve_only.env["REDIS_URL"])
    wait_until(
        lambda: any(c["cmd"] == "xread" and "b" in c["flags"] for c in connection.client_list()),
        FINISH_SECONDS,
        "the long poll to block on the queue",
    )
    sqs.send_message(QueueUrl=queue, MessageBody="worth the wait")
    waiting.join(timeout=60)
    assert [message["Body"] for message in got] == ["worth the wait"]


def test_at_most_max_number_of_messages_are_received_and_more_than_ten_is_refused(
    sqs: Any, queue: str
) -> None:
    for start in (0, 10):
        entries = [{"Id": f"m{i}", "MessageBody": str(i)} for i in range(start, start + 10)]
        sqs.send_message_batch(QueueUrl=queue, Entries=entries[: 12 - start])
    assert len(receive(sqs, queue, MaxNumberOfMessages=10)) == 10
    assert len(receive(sqs, queue, MaxNumberOfMessages=10)) == 2
    with pytest.raises(sqs.exceptions.ClientError) as refused:
        receive(sqs, queue, MaxNumberOfMessages=11)
    assert "MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10" in str(refused.value)
    with pytest.raises(sqs.exceptions.ClientError):
        receive(sqs, queue, WaitTimeSeconds=21)


def test_a_message_received_more_than_max_receive_count_moves_to_the_dead_letter_queue(sqs: Any) -> None:
    dead = sqs.create_queue(QueueName=f"dead-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": 2})
    url = sqs.create_queue(QueueName=f"work-{uuid.uuid4().hex[:10]}", Attributes={"RedrivePolicy": policy})[
        "QueueUrl"
    ]
    sent = sqs.send_message(QueueUrl=url, MessageBody="poison")
    for _ in range(2):
        [message] = receive(sqs, url)
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )

    assert receive(sqs, url) == []
    [letter] = receive(sqs, dead)
    assert (letter["MessageId"], letter["Body"]) == (sent["MessageId"], "poison")
    assert counts(sqs, url) == ("0", "0")


def test_a_forged_or_stale_receipt_handle_is_refused(sqs: Any, queue: str) -> None:
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
        sqs.delete_message(QueueUrl=queue, ReceiptHandle="not-a-handle")
    other = sqs.create_queue(QueueName=f"other-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    sqs.send_message(QueueUrl=other, MessageBody="elsewhere")
    [message] = receive(sqs, other)
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    sqs.delete_message(QueueUrl=other, ReceiptHandle=message["ReceiptHandle"])
    with pytest.raises(sqs.exceptions.MessageNotInflight):
        sqs.change_message_visibility(
            QueueUrl=other, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=5
        )


def test_the_pipelines_queue_is_left_to_its_event_source_mapping(sqs: Any) -> None:
    url = sqs.get_queue_url(QueueName="dragons")["QueueUrl"]
    with pytest.raises(sqs.exceptions.UnsupportedOperation) as refused:
        sqs.receive_message(QueueUrl=url)
    assert "event-source mapping" in refused.value.response["Error"]["Message"]


def test_batches_delete_and_hide_messages_and_report_each_bad_handle(sqs: Any, queue: str) -> None:
    sqs.send_message_batch(QueueUrl=queue, Entries=[{"Id": f"m{i}", "MessageBody": str(i)} for i in range(3)])
    first, second, third = receive(sqs, queue, MaxNumberOfMessages=10, VisibilityTimeout=600)

    hidden = sqs.change_message_visibility_batch(
        QueueUrl=queue,
        Entries=[
            {"Id": "show", "ReceiptHandle": first["ReceiptHandle"], "VisibilityTimeout": 0},
            {"Id": "forged", "ReceiptHandle": "forged", "VisibilityTimeout": 0},
        ],
    )
    assert [entry["Id"] for entry in hidden["Successful"]] == ["show"]
    assert [(entry["Id"], entry["Code"]) for entry in hidden["Failed"]] == [
        ("forged", "ReceiptHandleIsInvalid")
    ]

    deleted = sqs.delete_message_batch(
        QueueUrl=queue,
        Entries=[
            {"Id": "a", "ReceiptHandle": second["ReceiptHandle"]},
            {"Id": "b", "ReceiptHandle": third["ReceiptHandle"]},
        ],
    )
    assert [entry["Id"] for entry in deleted["Successful"]] == ["a", "b"] and deleted["Failed"] == []
    [again] = receive(sqs, queue, MaxNumberOfMessages=10)
    assert again["Body"] == first["Body"]
    with pytest.raises(sqs.exceptions.BatchEntryIdsNotDistinct):
        sqs.delete_message_batch(
            QueueUrl=queue,
            Entries=[{"Id": "x", "ReceiptHandle": "h"}, {"Id": "x", "ReceiptHandle": "h"}],
        )
