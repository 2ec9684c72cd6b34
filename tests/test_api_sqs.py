"""SQS through boto3: the source queues have URLs and attributes, and a message sent to the
pipeline's queue starts a DragonPipeline execution as a record from ``redstep produce`` does."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import boto3
import botocore.exceptions
import pytest
import redis
from botocore.config import Config

from orchestrator.runtime.keys import Keys
from orchestrator.runtime.sources import ensure_group
from tests.api_fixtures import (
    ACCESS_KEY_ID,
    ACCOUNT,
    FINISH_SECONDS,
    REGION,
    SECRET_ACCESS_KEY,
    ApiStack,
    api_stack,
    role_arn,
    sfn,
)
from tests.chaos import wait_until

__all__ = ["api_stack", "sfn"]
PIPELINE = "DragonPipeline"


def sqs_client(stack: ApiStack) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=stack.url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=Config(retries={"max_attempts": 1}),
    )


@pytest.fixture(scope="module")
def sqs(api_stack: ApiStack) -> Any:
    return sqs_client(api_stack)


@pytest.fixture
def side_queue(api_stack: ApiStack) -> str:
    """A queue nobody consumes: a stream with its group, as any source queue has."""
    name = f"side-{uuid.uuid4().hex[:10]}"
    connection = redis.Redis.from_url(api_stack.env["REDIS_URL"])
    ensure_group(connection, Keys(api_stack.prefix).queue(name))
    return name


def dragon(name: str) -> dict[str, str]:
    return {
        "dragon_name_str": name,
        "description_str": "seen over the harbour",
        "family_str": "red",
        "location_city_str": "Seattle",
        "location_state_str": "WA",
        "location_country_str": "USA",
        "location_neighborhood_str": "Belltown",
    }


def execution_arn(name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{PIPELINE}:{name}"


def finished(sfn: Any, arn: str) -> dict[str, Any]:
    """DescribeExecution once the event-source mapping started the execution and it finished."""
    described: dict[str, Any] = {}

    def done() -> bool:
        try:
            described.update(sfn.describe_execution(executionArn=arn))
        except sfn.exceptions.ExecutionDoesNotExist:
            return False
        return described["status"] != "RUNNING"

    wait_until(done, FINISH_SECONDS, f"execution {arn} to start and finish", interval=0.05)
    return described


def notified(sfn: Any, arn: str) -> str:
    """Which notification the finished execution sent: NotifyInserted or NotifyExists."""
    assert finished(sfn, arn)["status"] == "SUCCEEDED"
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
    return next(name for name in entered if name.startswith("Notify"))


def test_the_pipelines_queue_has_a_url_an_arn_and_is_listed(api_stack: ApiStack, sqs: Any) -> None:
    url = sqs.get_queue_url(QueueName="dragons")["QueueUrl"]
    assert url == f"{api_stack.url}/{ACCOUNT}/dragons"
    assert url in sqs.list_queues()["QueueUrls"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn", "VisibilityTimeout"])
    assert attributes["Attributes"] == {
        "QueueArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:dragons",
        "VisibilityTimeout": "30",
    }


def test_a_queue_url_is_made_of_the_host_the_client_called(api_stack: ApiStack) -> None:
    by_name = sqs_client(ApiStack(api_stack.url.replace("127.0.0.1", "localhost"), {}, "", api_stack.logs))
    url = by_name.get_queue_url(QueueName="dragons")["QueueUrl"]
    assert url.startswith("http://localhost:")
    assert by_name.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]


def test_a_message_sent_with_boto3_starts_a_dragon_pipeline_execution_named_by_its_message_id(
    sqs: Any, sfn: Any
) -> None:
    url = sqs.get_queue_url(QueueName="dragons")["QueueUrl"]
    record = dragon(f"Smaug-{uuid.uuid4().hex[:8]}")
    body = json.dumps(record)

    sent = sqs.send_message(QueueUrl=url, MessageBody=body)

    assert sent["MD5OfMessageBody"] == hashlib.md5(body.encode()).hexdigest()
    described = finished(sfn, execution_arn(sent["MessageId"]))
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["input"]) == record
    assert notified(sfn, execution_arn(sent["MessageId"])) == "NotifyInserted"


def test_a_batch_sent_with_boto3_starts_one_execution_per_message_and_a_repeat_finds_the_dragon(
    sqs: Any, sfn: Any
) -> None:
    url = sqs.get_queue_url(QueueName="dragons")["QueueUrl"]
    name = f"Drogon-{uuid.uuid4().hex[:8]}"
    entries = [{"Id": f"e{i}", "MessageBody": json.dumps(dragon(f"{name}-{i}"))} for i in range(3)]

    first = sqs.send_message_batch(QueueUrl=url, Entries=entries)
    assert first["Failed"] == []
    assert [entry["Id"] for entry in first["Successful"]] == ["e0", "e1", "e2"]
    notices = [notified(sfn, execution_arn(entry["MessageId"])) for entry in first["Successful"]]
    assert notices == ["NotifyInserted"] * 3

    # The same record again is a new message and a new execution, which finds the dragon there.
    again = sqs.send_message(QueueUrl=url, MessageBody=entries[0]["MessageBody"])
    assert notified(sfn, execution_arn(again["MessageId"])) == "NotifyExists"


def test_a_batch_reports_a_bad_entry_as_failed_and_sends_the_others(sqs: Any, side_queue: str) -> None:
    url = sqs.get_queue_url(QueueName=side_queue)["QueueUrl"]
    answer = sqs.send_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "good", "MessageBody": "plain text"},
            {
                "Id": "bad",
                "MessageBody": "x",
                "MessageAttributes": {"n": {"DataType": "Number", "StringValue": "not a number"}},
            },
        ],
    )
    assert [entry["Id"] for entry in answer["Successful"]] == ["good"]
    [failed] = answer["Failed"]
    assert failed["Id"] == "bad" and failed["SenderFault"] is True
    assert "MessageAttributes.n.StringValue 'not a number' is not a number" in failed["Message"]
    depth = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert depth["Attributes"]["ApproximateNumberOfMessages"] == "1"


@pytest.mark.parametrize(
    ("attributes", "md5"),
    [
        # Digests other SQS implementations test against, made by AWS's SDKs.
        (
            {"timestamp": {"DataType": "Number", "StringValue": "1493147359900"}},
            "235c5c510d26fb653d073faed50ae77c",
        ),
        (
            {
                "ordinal": {"DataType": "Number", "StringValue": "1"},
                "category": {"DataType": "String", "StringValue": "test"},
            },
            "d21ae90c49061e927f57df5f5d72be1f",
        ),
        (
            {"SellerName": {"DataType": "String", "StringValue": "Example Store"}},
            "cd28f3b68aeee4b2eac9c66f2f694b58",
        ),
    ],
)
def test_send_message_answers_the_md5_of_its_attributes_as_aws_does(
    sqs: Any, side_queue: str, attributes: dict[str, Any], md5: str
) -> None:
    url = sqs.get_queue_url(QueueName=side_queue)["QueueUrl"]
    sent = sqs.send_message(QueueUrl=url, MessageBody="héllo ✓", MessageAttributes=attributes)
    assert sent["MD5OfMessageAttributes"] == md5
    assert sent["MD5OfMessageBody"] == hashlib.md5("héllo ✓".encode()).hexdigest()


def test_a_binary_attribute_is_kept_and_digested_as_bytes(
    api_stack: ApiStack, sqs: Any, side_queue: str
) -> None:
    url = sqs.get_queue_url(QueueName=side_queue)["QueueUrl"]
    attributes = {"blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xff"}}
    sent = sqs.send_message(QueueUrl=url, MessageBody="{}", MessageAttributes=attributes)
    expected = hashlib.md5(
        b"\x00\x00\x00\x04blob" + b"\x00\x00\x00\x06Binary" + b"\x02" + b"\x00\x00\x00\x03\x00\x01\xff"
    ).hexdigest()
    assert sent["MD5OfMessageAttributes"] == expected
    connection = redis.Redis.from_url(api_stack.env["REDIS_URL"])
    [(_, fields)] = connection.xrange(Keys(api_stack.prefix).queue(side_queue))
    assert json.loads(fields[b"attributes"]) == {"blob": {"DataType": "Binary", "BinaryValue": "AAH/"}}


def test_queue_attributes_count_the_messages_waiting(sqs: Any, side_queue: str) -> None:
    url = sqs.get_queue_url(QueueName=side_queue)["QueueUrl"]
    for index in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=f"message {index}")
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "3"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
    assert attributes["QueueArn"] == f"arn:aws:sqs:{REGION}:{ACCOUNT}:{side_queue}"
    assert attributes["MaximumMessageSize"] == "262144"


def test_list_queues_filters_by_prefix_and_pages_with_max_results(sqs: Any, api_stack: ApiStack) -> None:
    stem = f"paged{uuid.uuid4().hex[:6]}"
    for index in range(3):
        sqs.create_queue(QueueName=f"{stem}-{index}")
    pages = list(sqs.get_paginator("list_queues").paginate(QueueNamePrefix=stem, MaxResults=2))
    assert [len(page["QueueUrls"]) for page in pages] == [2, 1]
    urls = [url for page in pages for url in page["QueueUrls"]]
    assert urls == [f"{api_stack.url}/{ACCOUNT}/{stem}-{index}" for index in range(3)]
    assert "QueueUrls" not in sqs.list_queues(QueueNamePrefix=f"{stem}-none")


def test_an_unknown_queue_raises_queue_does_not_exist_with_the_query_error_header(
    api_stack: ApiStack, sqs: Any
) -> None:
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as by_name:
        sqs.get_queue_url(QueueName="no-such-queue")
    headers = by_name.value.response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-query-error"] == "AWS.SimpleQueueService.NonExistentQueue;Sender"
    assert "no-such-queue" in by_name.value.response["Error"]["Message"]
    unknown = f"{api_stack.url}/{ACCOUNT}/no-such-queue"
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.send_message(QueueUrl=unknown, MessageBody="x")
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_attributes(QueueUrl=unknown, AttributeNames=["All"])
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as other_account:
        sqs.send_message(QueueUrl=f"{api_stack.url}/123456789012/dragons", MessageBody="x")
    assert "serves account '000000000000'" in other_account.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    ("entries", "exception"),
    [
        ([], "EmptyBatchRequest"),
        ([{"Id": f"e{i}", "MessageBody": "x"} for i in range(11)], "TooManyEntriesInBatchRequest"),
        (
            [{"Id": "same", "MessageBody": "x"}, {"Id": "same", "MessageBody": "y"}],
            "BatchEntryIdsNotDistinct",
        ),
        ([{"Id": "has space", "MessageBody": "x"}], "InvalidBatchEntryId"),
    ],
)
def test_a_malformed_batch_raises_its_modelled_exception_and_sends_nothing(
    sqs: Any, side_queue: str, entries: list[dict[str, str]], exception: str
) -> None:
    url = sqs.get_queue_url(QueueName=side_queue)["QueueUrl"]
    with pytest.raises(getattr(sqs.exceptions, exception)):
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    depth = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert depth["Attributes"]["ApproximateNumberOfMessages"] == "0"


@pytest.mark.parametrize(
    ("request_", "says"),
    [
        ({"MessageBody": "bad \x01 byte"}, "U+0001"),
        ({"MessageBody": "x" * 262_145}, "at most 262144 bytes"),
        ({"MessageBody": "x", "DelaySeconds": 5}, "DelaySeconds is not supported"),
        (
            {"MessageBody": "x", "MessageAttributes": {"AWS.x": {"DataType": "String", "StringValue": "v"}}},
            "reserves",
        ),
        (
            {"MessageBody": "x", "MessageAttributes": {"a": {"DataType": "Text", "StringValue": "v"}}},
            "DataType",
        ),
    ],
)
def test_a_message_sqs_refuses_is_refused_with_a_clear_error_and_not_queued(
    sqs: Any, side_queue: str, request_: dict[str, Any], says: str
) -> None:
    url = sqs.get_queue_url(QueueName=side_queue)["QueueUrl"]
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        sqs.send_message(QueueUrl=url, **request_)
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert says in refused.value.response["Error"]["Message"]
    depth = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert depth["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_a_state_machines_send_message_is_received_with_its_body_and_the_tasks_message_id(
    sqs: Any, sfn: Any
) -> None:
    name = f"outbox-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]

    def send(body: Any, following: str | None) -> dict[str, Any]:
        state = {
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage",
            "Parameters": {"QueueUrl": url, "MessageBody": body},
            "ResultPath": f"$.{'text' if isinstance(body, str) else 'json'}",
        }
        return state | ({"Next": following} if following else {"End": True})

    definition = {"StartAt": "Text", "States": {"Text": send("hi", "Json"), "Json": send({"a": 1}, None)}}
    machine = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=role_arn())
    arn = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], input="{}")["executionArn"]
    described = finished(sfn, arn)
    assert described["status"] == "SUCCEEDED", described
    results = json.loads(described["output"])

    received: list[dict[str, Any]] = []

    def both_received() -> bool:
        received.extend(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []))
        return len(received) >= 2

    wait_until(both_received, FINISH_SECONDS, "both messages to be received", interval=0.05)
    # As SQS delivers what sendMessage sent: the text as given, an object as its JSON text.
    bodies = {message["MessageId"]: message["Body"] for message in received}
    assert bodies == {results["text"]["MessageId"]: "hi", results["json"]["MessageId"]: json.dumps({"a": 1})}
    for result in (results["text"], results["json"]):
        body = bodies[result["MessageId"]]
        assert result["MD5OfMessageBody"] == hashlib.md5(body.encode()).hexdigest()


def test_a_state_machines_message_attributes_are_received_with_the_digest_its_task_answered(
    sqs: Any, sfn: Any
) -> None:
    # AWS's template (LocalStack's recorded test_send_message_attributes): two string attributes
    # taken from the input, the message received with both ("MessageAttributeNames": All).
    name = f"outbox-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    attributes = {
        f"my_attribute_no_{n}": {"DataType": "String", "StringValue.$": f"$.MessageAttributeValue{n}"}
        for n in (1, 2)
    }
    parameters = {"QueueUrl.$": "$.QueueUrl", "MessageBody.$": "$.Message", "MessageAttributes": attributes}
    definition = {
        "StartAt": "SendSQS",
        "States": {
            "SendSQS": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage",
                "Parameters": parameters,
                "End": True,
            }
        },
    }
    machine = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=role_arn())
    given = {"QueueUrl": url, "Message": "test_message_body", "MessageAttributeValue1": "Hello"}
    given["MessageAttributeValue2"] = "World"
    arn = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], input=json.dumps(given))[
        "executionArn"
    ]
    described = finished(sfn, arn)
    assert described["status"] == "SUCCEEDED", described
    result = json.loads(described["output"])

    received = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"], WaitTimeSeconds=5)
    [message] = received["Messages"]
    assert message["Body"] == "test_message_body"
    assert message["MessageAttributes"] == {
        "my_attribute_no_1": {"StringValue": "Hello", "DataType": "String"},
        "my_attribute_no_2": {"StringValue": "World", "DataType": "String"},
    }
    assert message["MD5OfMessageAttributes"] == result["MD5OfMessageAttributes"]
    assert message["MessageId"] == result["MessageId"]
    assert result["SdkHttpMetadata"]["HttpHeaders"]["Content-Length"] == "166"
