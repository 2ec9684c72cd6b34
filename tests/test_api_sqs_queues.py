"""CreateQueue, DeleteQueue and PurgeQueue through boto3, with the attributes SQS takes and its errors."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.api_fixtures import ACCOUNT, REGION, ApiStack, serve_only
from tests.test_api_sqs import sqs_client

__all__ = ["serve_only"]


@pytest.fixture(scope="module")
def sqs(serve_only: ApiStack) -> Any:
    return sqs_client(serve_only)


def unique(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:10]}"


def depth(sqs: Any, url: str) -> str:
    answer = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return str(answer["Attributes"]["ApproximateNumberOfMessages"])


def test_a_created_queue_has_its_url_its_attributes_and_takes_messages(
    serve_only: ApiStack, sqs: Any
) -> None:
    name = unique("orders")
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": "45",
            "MessageRetentionPeriod": "3600",
            "ReceiveMessageWaitTimeSeconds": "5",
        },
    )["QueueUrl"]

    assert url == f"{serve_only.url}/{ACCOUNT}/{name}"
    assert sqs.get_queue_url(QueueName=name)["QueueUrl"] == url
    assert url in sqs.list_queues(QueueNamePrefix=name)["QueueUrls"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "45"
    assert attributes["MessageRetentionPeriod"] == "3600"
    assert attributes["ReceiveMessageWaitTimeSeconds"] == "5"
    assert attributes["QueueArn"] == f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
    assert int(attributes["CreatedTimestamp"]) > 0
    sqs.send_message(QueueUrl=url, MessageBody="first order")
    assert depth(sqs, url) == "1"


def test_creating_a_queue_again_with_the_same_attributes_answers_its_url_and_keeps_its_messages(
    sqs: Any,
) -> None:
    name = unique("again")
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "10"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="kept")
    assert sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "10"})["QueueUrl"] == url
    assert sqs.create_queue(QueueName=name)["QueueUrl"] == url
    assert depth(sqs, url) == "1"
    with pytest.raises(sqs.exceptions.QueueNameExists) as exists:
        sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "20"})
    assert "different values of VisibilityTimeout" in exists.value.response["Error"]["Message"]


def test_the_pipelines_queue_cannot_be_created_with_other_settings_nor_deleted(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="dragons", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    with pytest.raises(sqs.exceptions.QueueNameExists):
        sqs.create_queue(QueueName="dragons", Attributes={"VisibilityTimeout": "31"})
    with pytest.raises(sqs.exceptions.UnsupportedOperation) as refused:
        sqs.delete_queue(QueueUrl=url)
    assert "PurgeQueue empties it" in refused.value.response["Error"]["Message"]
    assert sqs.get_queue_url(QueueName="dragons")["QueueUrl"] == url


def test_a_redrive_policy_names_an_existing_queue_and_is_answered_as_given(sqs: Any) -> None:
    dead = sqs.create_queue(QueueName=unique("dead"))["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = {"deadLetterTargetArn": dead_arn, "maxReceiveCount": 3}
    url = sqs.create_queue(QueueName=unique("work"), Attributes={"RedrivePolicy": json.dumps(policy)})[
        "QueueUrl"
    ]
    answered = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"]
    assert json.loads(answered["RedrivePolicy"]) == policy

    missing = {
        "deadLetterTargetArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{unique('none')}",
        "maxReceiveCount": 3,
    }
    with pytest.raises(sqs.exceptions.InvalidAttributeValue) as refused:
        sqs.create_queue(QueueName=unique("work"), Attributes={"RedrivePolicy": json.dumps(missing)})
    assert "does not exist" in refused.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    ("attributes", "exception", "says"),
    [
        ({"VisibilityTimeout": "43201"}, "InvalidAttributeValue", "a whole number from 0 to 43200"),
        ({"ReceiveMessageWaitTimeSeconds": "21"}, "InvalidAttributeValue", "from 0 to 20"),
        ({"DelaySeconds": "5"}, "InvalidAttributeValue", "deliver at once"),
        ({"RedrivePolicy": "{}"}, "InvalidAttributeValue", "deadLetterTargetArn"),
        ({"FifoQueue": "true"}, "InvalidAttributeName", "standard queues"),
        ({"NoSuchAttribute": "1"}, "InvalidAttributeName", "NoSuchAttribute"),
    ],
)
def test_an_attribute_sqs_refuses_is_refused_by_name_and_no_queue_is_made(
    sqs: Any, attributes: dict[str, str], exception: str, says: str
) -> None:
    name = unique("refused")
    with pytest.raises(getattr(sqs.exceptions, exception)) as refused:
        sqs.create_queue(QueueName=name, Attributes=attributes)
    assert says in refused.value.response["Error"]["Message"]
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_url(QueueName=name)


def test_a_fifo_queue_or_a_name_sqs_forbids_is_refused(sqs: Any) -> None:
    with pytest.raises(sqs.exceptions.UnsupportedOperation) as fifo:
        sqs.create_queue(QueueName=unique("orders") + ".fifo")
    assert "standard queues only" in fifo.value.response["Error"]["Message"]
    with pytest.raises(sqs.exceptions.ClientError) as bad_name:
        sqs.create_queue(QueueName="has space")
    assert bad_name.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert "1 to 80 ASCII letters" in bad_name.value.response["Error"]["Message"]


def test_a_deleted_queue_is_gone_and_its_name_can_be_created_anew(sqs: Any) -> None:
    name = unique("gone")
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "5"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="lost with the queue")
    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_url(QueueName=name)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.send_message(QueueUrl=url, MessageBody="x")
    assert "QueueUrls" not in sqs.list_queues(QueueNamePrefix=name)
    again = sqs.create_queue(QueueName=name)["QueueUrl"]
    assert depth(sqs, again) == "0"
    assert sqs.get_queue_attributes(QueueUrl=again, AttributeNames=["VisibilityTimeout"])["Attributes"] == {
        "VisibilityTimeout": "30"
    }


def test_purging_a_queue_drops_its_messages_and_it_takes_new_ones(sqs: Any) -> None:
    url = sqs.create_queue(QueueName=unique("purged"))["QueueUrl"]
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": f"m{i}", "MessageBody": f"{i}"} for i in range(4)])
    assert depth(sqs, url) == "4"
    sqs.purge_queue(QueueUrl=url)
    assert depth(sqs, url) == "0"
    sqs.send_message(QueueUrl=url, MessageBody="after the purge")
    assert depth(sqs, url) == "1"


def test_set_queue_attributes_changes_them_and_an_empty_redrive_policy_removes_it(sqs: Any) -> None:
    dead = sqs.create_queue(QueueName=unique("dead"))["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName=unique("work"))["QueueUrl"]
    policy = json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": 4})

    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "90", "RedrivePolicy": policy})
    names = ["VisibilityTimeout", "RedrivePolicy"]
    changed = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    assert changed == {
        "VisibilityTimeout": "90",
        "RedrivePolicy": json.dumps(json.loads(policy), separators=(",", ":")),
    }
    assert sqs.list_dead_letter_source_queues(QueueUrl=dead)["queueUrls"] == [url]

    sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": ""})
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"] == {
        "VisibilityTimeout": "90"
    }
    assert sqs.list_dead_letter_source_queues(QueueUrl=dead)["queueUrls"] == []
    with pytest.raises(sqs.exceptions.InvalidAttributeValue):
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"MessageRetentionPeriod": "59"})


def test_dead_letter_source_queues_are_listed_in_pages(sqs: Any) -> None:
    dead = sqs.create_queue(QueueName=unique("dead"))["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": 2})
    stem = unique("source")
    sources = [
        sqs.create_queue(QueueName=f"{stem}-{i}", Attributes={"RedrivePolicy": policy})["QueueUrl"]
        for i in range(3)
    ]
    pages = list(sqs.get_paginator("list_dead_letter_source_queues").paginate(QueueUrl=dead, MaxResults=2))
    assert [page["queueUrls"] for page in pages] == [sources[:2], sources[2:]]


def test_the_pipelines_queue_keeps_the_settings_of_its_environment(sqs: Any) -> None:
    url = sqs.get_queue_url(QueueName="dragons")["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "30"})
    with pytest.raises(sqs.exceptions.UnsupportedOperation) as refused:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "60"})
    assert "REDSTEP_VISIBILITY_TIMEOUT_SECONDS" in refused.value.response["Error"]["Message"]
