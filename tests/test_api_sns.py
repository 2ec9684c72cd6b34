"""SNS through boto3: topics are the notification channels, Publish reaches ``redstep subscribe``,
subscriptions deliver to redstep SQS queues and to HTTP endpoints, and the dragon pipeline's
"Record inserted" reaches a queue subscribed with boto3 alone."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.etree import ElementTree

import boto3
import botocore.exceptions
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from tests.api_fixtures import (
    ACCESS_KEY_ID,
    ACCOUNT,
    FINISH_SECONDS,
    REGION,
    SECRET_ACCESS_KEY,
    ApiStack,
    api_stack,
    sfn,
)
from tests.chaos import wait_until

__all__ = ["api_stack", "sfn"]
DRAGON_TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:dragon-notifications"


def client(stack: ApiStack, service: str, **overrides: Any) -> Any:
    options: dict[str, Any] = {
        "endpoint_url": stack.url,
        "region_name": REGION,
        "aws_access_key_id": ACCESS_KEY_ID,
        "aws_secret_access_key": SECRET_ACCESS_KEY,
        "config": Config(retries={"max_attempts": 1}),
    }
    options.update(overrides)
    return boto3.client(service, **options)


@pytest.fixture(scope="module")
def sns(api_stack: ApiStack) -> Any:
    return client(api_stack, "sns")


@pytest.fixture(scope="module")
def sqs(api_stack: ApiStack) -> Any:
    return client(api_stack, "sqs")


def unique(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:10]}"


def new_queue(sqs: Any) -> tuple[str, str]:
    """A fresh queue's URL and ARN."""
    url = sqs.create_queue(QueueName=unique("inbox"))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def received(sqs: Any, url: str, count: int = 1) -> list[dict[str, Any]]:
    """``count`` messages from the queue (each deleted), waiting for them with long polls."""
    messages: list[dict[str, Any]] = []

    def enough() -> bool:
        answer = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
        )
        for message in answer.get("Messages", []):
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            messages.append(message)
        return len(messages) >= count

    wait_until(enough, FINISH_SECONDS, f"{count} message(s) on {url}", interval=0.05)
    return messages


def test_a_topic_is_created_listed_described_changed_and_deleted(sns: Any) -> None:
    name = unique("orders")
    arn = sns.create_topic(Name=name, Attributes={"DisplayName": "Orders"})["TopicArn"]
    assert arn == f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}"
    assert sns.create_topic(Name=name)["TopicArn"] == arn  # idempotent, as SNS
    listed = [
        topic["TopicArn"]
        for topic in sns.get_paginator("list_topics").paginate().build_full_result()["Topics"]
    ]
    assert arn in listed and DRAGON_TOPIC in listed

    attributes = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert attributes["TopicArn"] == arn
    assert attributes["DisplayName"] == "Orders"
    assert attributes["Owner"] == ACCOUNT
    sns.set_topic_attributes(TopicArn=arn, AttributeName="DisplayName", AttributeValue="Renamed")
    assert sns.get_topic_attributes(TopicArn=arn)["Attributes"]["DisplayName"] == "Renamed"

    sns.delete_topic(TopicArn=arn)
    with pytest.raises(sns.exceptions.NotFoundException):
        sns.get_topic_attributes(TopicArn=arn)
    sns.delete_topic(TopicArn=arn)  # deleting what is gone succeeds, as SNS


def test_list_topics_pages_through_more_than_one_page(sns: Any) -> None:
    stem = unique("many")
    made = {sns.create_topic(Name=f"{stem}-{index:03d}")["TopicArn"] for index in range(105)}
    pages = list(sns.get_paginator("list_topics").paginate())
    assert len(pages) >= 2
    assert all(len(page["Topics"]) <= 100 for page in pages)
    listed = [topic["TopicArn"] for page in pages for topic in page["Topics"]]
    assert made <= set(listed)
    assert len(listed) == len(set(listed))
    with pytest.raises(botocore.exceptions.ClientError) as forged:
        sns.list_topics(NextToken="forged")
    assert forged.value.response["Error"]["Code"] == "InvalidToken"


def test_modelled_exceptions_are_raised(sns: Any) -> None:
    missing = f"arn:aws:sns:{REGION}:{ACCOUNT}:{unique('missing')}"
    with pytest.raises(sns.exceptions.NotFoundException):
        sns.publish(TopicArn=missing, Message="hello")
    with pytest.raises(sns.exceptions.NotFoundException):
        sns.subscribe(TopicArn=missing, Protocol="sqs", Endpoint=f"arn:aws:sqs:{REGION}:{ACCOUNT}:q")
    with pytest.raises(sns.exceptions.InvalidParameterException) as bad_name:
        sns.create_topic(Name="no spaces allowed")
    assert "topic name" in str(bad_name.value)
    with pytest.raises(sns.exceptions.InvalidParameterException):
        sns.publish(TopicArn=f"arn:aws:sns:eu-west-1:{ACCOUNT}:x", Message="hello")
    with pytest.raises(sns.exceptions.InvalidParameterException):
        sns.subscribe(TopicArn=DRAGON_TOPIC, Protocol="email", Endpoint="someone@example.com")
    with pytest.raises(sns.exceptions.NotFoundException):
        sns.unsubscribe(SubscriptionArn=f"{DRAGON_TOPIC}:{uuid.uuid4()}")
    arn = sns.create_topic(Name=unique("batch"))["TopicArn"]
    with pytest.raises(sns.exceptions.BatchEntryIdsNotDistinctException):
        sns.publish_batch(
            TopicArn=arn,
            PublishBatchRequestEntries=[{"Id": "a", "Message": "1"}, {"Id": "a", "Message": "2"}],
        )
    with pytest.raises(sns.exceptions.TooManyEntriesInBatchRequestException):
        sns.publish_batch(
            TopicArn=arn, PublishBatchRequestEntries=[{"Id": f"e{i}", "Message": "m"} for i in range(11)]
        )


def test_a_wrong_secret_or_an_unknown_key_is_refused(api_stack: ApiStack) -> None:
    wrong_secret = client(api_stack, "sns", aws_secret_access_key="not-the-secret")
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        wrong_secret.list_topics()
    assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    unknown_key = client(api_stack, "sns", aws_access_key_id="AKIDUNKNOWN0000000")
    with pytest.raises(botocore.exceptions.ClientError) as unknown:
        unknown_key.list_topics()
    assert unknown.value.response["Error"]["Code"] == "InvalidClientTokenId"


def test_a_message_published_with_boto3_shows_in_redstep_subscribe(api_stack: ApiStack, sns: Any) -> None:
    name = unique("news")
    arn = sns.create_topic(Name=name)["TopicArn"]
    message_id = sns.publish(TopicArn=arn, Message="the harbour is clear", Subject="Watch")["MessageId"]

    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "producer.cli",
            "subscribe",
            "--topic",
            name,
            "--replay",
            "--json",
            "--count",
            "1",
        ],
        env=api_stack.env,
        capture_output=True,
        text=True,
        timeout=FINISH_SECONDS,
        check=True,
    )
    envelope = json.loads(shown.stdout.splitlines()[0])
    assert envelope["MessageId"] == message_id
    assert envelope["Message"] == "the harbour is clear"
    assert envelope["Subject"] == "Watch"
    assert envelope["TopicArn"] == arn


def test_an_sqs_subscription_receives_the_sns_envelope_and_a_raw_one_the_message(sns: Any, sqs: Any) -> None:
    arn = sns.create_topic(Name=unique("fanout"))["TopicArn"]
    enveloped_url, enveloped_arn = new_queue(sqs)
    raw_url, raw_arn = new_queue(sqs)
    enveloped = sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=enveloped_arn)["SubscriptionArn"]
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=raw_arn, Attributes={"RawMessageDelivery": "true"})
    by_topic = sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
    assert {sub["Endpoint"] for sub in by_topic} == {enveloped_arn, raw_arn}
    assert all(sub["Protocol"] == "sqs" and sub["TopicArn"] == arn for sub in by_topic)
    everything = sns.get_paginator("list_subscriptions").paginate().build_full_result()["Subscriptions"]
    assert enveloped in {sub["SubscriptionArn"] for sub in everything}

    message_id = sns.publish(
        TopicArn=arn,
        Message="dragon sighted",
        Subject="Sighting",
        MessageAttributes={"colour": {"DataType": "String", "StringValue": "red"}},
    )["MessageId"]

    [message] = received(sqs, enveloped_url)
    body = json.loads(message["Body"])
    assert body["Type"] == "Notification"
    assert body["MessageId"] == message_id
    assert body["TopicArn"] == arn
    assert body["Subject"] == "Sighting"
    assert body["Message"] == "dragon sighted"
    assert body["MessageAttributes"] == {"colour": {"Type": "String", "Value": "red"}}
    assert body["UnsubscribeURL"].endswith(enveloped.replace("/", "%2F"))
    [raw] = received(sqs, raw_url)
    assert raw["Body"] == "dragon sighted"
    assert raw["MessageAttributes"]["colour"]["StringValue"] == "red"

    sns.unsubscribe(SubscriptionArn=enveloped)
    assert [sub["Endpoint"] for sub in sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]] == [
        raw_arn
    ]


def test_a_batch_is_delivered_message_by_message(sns: Any, sqs: Any) -> None:
    arn = sns.create_topic(Name=unique("batch"))["TopicArn"]
    url, queue_arn = new_queue(sqs)
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})

    answer = sns.publish_batch(
        TopicArn=arn,
        PublishBatchRequestEntries=[{"Id": f"e{i}", "Message": f"message {i}"} for i in range(3)]
        + [{"Id": "bad", "Message": "m", "Subject": "two\nlines"}],
    )

    assert sorted(entry["Id"] for entry in answer["Successful"]) == ["e0", "e1", "e2"]
    assert [(entry["Id"], entry["Code"]) for entry in answer["Failed"]] == [("bad", "InvalidParameter")]
    bodies = sorted(message["Body"] for message in received(sqs, url, 3))
    assert bodies == ["message 0", "message 1", "message 2"]


def test_the_dragon_pipelines_notification_reaches_a_queue_subscribed_with_boto3(sns: Any, sqs: Any) -> None:
    url, queue_arn = new_queue(sqs)
    subscription = sns.subscribe(TopicArn=DRAGON_TOPIC, Protocol="sqs", Endpoint=queue_arn)["SubscriptionArn"]
    try:
        dragons = sqs.get_queue_url(QueueName="dragons")["QueueUrl"]
        name = unique("Smaug")
        record = {
            "dragon_name_str": name,
            "description_str": "seen over the harbour",
            "family_str": "red",
            "location_city_str": "Seattle",
            "location_state_str": "WA",
            "location_country_str": "USA",
            "location_neighborhood_str": "Belltown",
        }
        sqs.send_message(QueueUrl=dragons, MessageBody=json.dumps(record))

        def inserted() -> bool:
            for message in received(sqs, url):
                body = json.loads(message["Body"])
                if body["Subject"] == "Record inserted" and name in body["Message"]:
                    return True
            return False

        wait_until(inserted, FINISH_SECONDS, f"'Record inserted' for {name} on the subscribed queue")
    finally:
        sns.unsubscribe(SubscriptionArn=subscription)


class Recorder(BaseHTTPRequestHandler):
    """Answers 500 to the first POST and 200 to the rest, and keeps what was posted."""

    posts: list[tuple[dict[str, str], str]]
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        with self.lock:
            self.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
            first = len(self.posts) == 1
        self.send_response(500 if first else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_endpoint() -> Iterator[tuple[str, list[tuple[dict[str, str], str]]]]:
    posts: list[tuple[dict[str, str], str]] = []
    handler = type("Handler", (Recorder,), {"posts": posts})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", posts
    finally:
        server.shutdown()
        server.server_close()


def test_an_http_subscription_is_posted_the_notification_and_retried_after_a_failure(
    sns: Any, http_endpoint: tuple[str, list[tuple[dict[str, str], str]]]
) -> None:
    url, posts = http_endpoint
    arn = sns.create_topic(Name=unique("web"))["TopicArn"]
    subscription = sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=url)["SubscriptionArn"]

    message_id = sns.publish(TopicArn=arn, Message="to the web", Subject="Hook")["MessageId"]

    wait_until(lambda: len(posts) >= 2, FINISH_SECONDS, "the HTTP delivery and its retry")
    for headers, body in posts[:2]:
        assert headers["x-amz-sns-message-type"] == "Notification"
        assert headers["x-amz-sns-message-id"] == message_id
        assert headers["x-amz-sns-topic-arn"] == arn
        assert headers["x-amz-sns-subscription-arn"] == subscription
        assert headers["content-type"].startswith("text/plain")
        document = json.loads(body)
        assert (document["Type"], document["Message"], document["Subject"]) == (
            "Notification",
            "to the web",
            "Hook",
        )


def aws(stack: ApiStack, *args: str, **extra_env: str) -> Any:
    """``aws ARGS --endpoint-url ...`` (the awscli package), its JSON answer."""
    env = {
        **{k: v for k, v in stack.env.items() if not k.startswith("REDSTEP_")},
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        **extra_env,
    }
    ran = subprocess.run(
        [sys.executable, "-m", "awscli", *args, "--endpoint-url", stack.url, "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    return json.loads(ran.stdout) if ran.stdout.strip() else None


def test_the_aws_cli_creates_a_topic_publishes_and_tests_a_state(api_stack: ApiStack) -> None:
    name = unique("cli")
    arn = aws(api_stack, "sns", "create-topic", "--name", name)["TopicArn"]
    assert {"TopicArn": arn} in aws(api_stack, "sns", "list-topics")["Topics"]
    assert aws(api_stack, "sns", "publish", "--topic-arn", arn, "--message", "from the CLI")["MessageId"]

    tested = aws(
        api_stack,
        "stepfunctions",
        "test-state",
        "--definition",
        json.dumps({"Type": "Pass", "Result": {"ok": True}, "Next": "Then"}),
        "--role-arn",
        f"arn:aws:iam::{ACCOUNT}:role/test",
        AWS_DISABLE_HOST_PREFIX_INJECTION="true",
    )
    assert (tested["status"], tested["nextState"], json.loads(tested["output"])) == (
        "SUCCEEDED",
        "Then",
        {"ok": True},
    )


def signed_form(stack: ApiStack, form: str, sent: str | None = None) -> tuple[int, str, str]:
    """POST the form to SNS signed by botocore (``sent`` replaces the body after signing):
    the status, the error code and the XML answer."""
    netloc = stack.url.removeprefix("http://")
    request = AWSRequest(
        method="POST",
        url=f"{stack.url}/",
        data=form.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    SigV4Auth(Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY), "sns", REGION).add_auth(request)
    address, port = netloc.split(":")
    connection = http.client.HTTPConnection(address, int(port), timeout=60)
    try:
        body = (sent if sent is not None else form).encode()
        connection.request("POST", "/", body=body, headers=dict(request.prepare().headers.items()))
        response = connection.getresponse()
        text = response.read().decode()
    finally:
        connection.close()
    code = ElementTree.fromstring(text).findtext(".//{*}Code") or ""
    return response.status, code, text


def test_bad_sns_requests_get_the_query_protocols_errors(api_stack: ApiStack, sns: Any) -> None:
    status, code, _ = signed_form(api_stack, "Action=NoSuchAction&Version=2010-03-31")
    assert (status, code) == (400, "InvalidAction")
    status, code, text = signed_form(api_stack, "Action=CreateTopic&Version=2010-03-31")
    assert (status, code) == (400, "ValidationError")
    assert "'Name'" in text
    status, code, _ = signed_form(
        api_stack,
        "Action=CreateTopic&Version=2010-03-31&Name=a",
        sent="Action=CreateTopic&Version=2010-03-31&Name=b",
    )
    assert (status, code) == (403, "SignatureDoesNotMatch")
    with pytest.raises(sns.exceptions.AuthorizationErrorException):
        sns.publish(TopicArn=f"arn:aws:sns:{REGION}:123456789012:theirs", Message="hello")
    arn = sns.create_topic(Name=unique("big"))["TopicArn"]
    with pytest.raises(sns.exceptions.InvalidParameterException):
        sns.publish(TopicArn=arn, Message="x" * 262_145)
    with pytest.raises(sns.exceptions.BatchRequestTooLongException):
        sns.publish_batch(
            TopicArn=arn,
            PublishBatchRequestEntries=[{"Id": f"e{i}", "Message": "x" * 100_000} for i in range(3)],
        )


def test_list_subscriptions_by_topic_pages_through_more_than_one_page(sns: Any) -> None:
    arn = sns.create_topic(Name=unique("crowd"))["TopicArn"]
    made = {
        sns.subscribe(TopicArn=arn, Protocol="https", Endpoint=f"https://example.invalid/{index}")[
            "SubscriptionArn"
        ]
        for index in range(105)
    }
    pages = list(sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=arn))
    assert [len(page["Subscriptions"]) for page in pages] == [100, 5]
    assert {sub["SubscriptionArn"] for page in pages for sub in page["Subscriptions"]} == made
    sns.delete_topic(TopicArn=arn)  # and its subscriptions with it
    remaining = sns.get_paginator("list_subscriptions").paginate().build_full_result()["Subscriptions"]
    assert not made & {sub["SubscriptionArn"] for sub in remaining}
