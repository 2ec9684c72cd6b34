"""Delivery to subscriptions loses nothing while no ``serve`` runs, and two ``serve`` processes
deliver each message once: delivery follows the topic's log through one consumer group."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
from botocore.config import Config

from orchestrator.runtime.notifications import publish
from orchestrator.runtime.server import RedisServer
from orchestrator.services import envelope
from orchestrator.settings import Settings
from tests.api_fixtures import (
    ACCESS_KEY_ID,
    ACCOUNT,
    FINISH_SECONDS,
    REGION,
    SECRET_ACCESS_KEY,
    api_env,
    serve,
)
from tests.chaos import stop, wait_until


def clients(url: str) -> tuple[Any, Any]:
    options: dict[str, Any] = {
        "endpoint_url": url,
        "region_name": REGION,
        "aws_access_key_id": ACCESS_KEY_ID,
        "aws_secret_access_key": SECRET_ACCESS_KEY,
        "config": Config(retries={"max_attempts": 1}),
    }
    return boto3.client("sns", **options), boto3.client("sqs", **options)


def drain(sqs: Any, url: str, count: int) -> list[str]:
    """Bodies received until ``count`` arrived (each deleted)."""
    bodies: list[str] = []

    def enough() -> bool:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in answer.get("Messages", []):
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            bodies.append(message["Body"])
        return len(bodies) >= count

    wait_until(enough, FINISH_SECONDS, f"{count} deliveries on {url}")
    return bodies


@pytest.fixture
def env(redis_server: RedisServer) -> dict[str, str]:
    return api_env(redis_server.url, f"dl{uuid.uuid4().hex[:8]}")


def test_a_notification_published_while_no_serve_runs_is_delivered_when_one_starts(
    env: dict[str, str], tmp_path: Path
) -> None:
    process, url = serve(env, tmp_path)
    try:
        sns, sqs = clients(url)
        topic = sns.create_topic(Name="offline")["TopicArn"]
        queue = sqs.create_queue(QueueName="offline-inbox")["QueueUrl"]
        queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:offline-inbox"
        sns.subscribe(
            TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"}
        )
    finally:
        stop(process)

    # Published as a state machine's sns:publish is, with no serve running.
    settings = Settings(redis_url=env["REDIS_URL"], prefix=env["REDSTEP_PREFIX"])
    connection = redis.Redis.from_url(env["REDIS_URL"])
    publish(connection, settings, envelope({"TopicArn": topic, "Message": "while you were away"}, 0.0))

    process, url = serve(env, tmp_path)
    try:
        sns, sqs = clients(url)
        assert drain(sqs, queue, 1) == ["while you were away"]
    finally:
        stop(process)


def test_two_serve_processes_deliver_each_message_once(env: dict[str, str], tmp_path: Path) -> None:
    first, url = serve(env, tmp_path)
    second, _ = serve(env, tmp_path)
    try:
        sns, sqs = clients(url)
        topic = sns.create_topic(Name="shared")["TopicArn"]
        queue = sqs.create_queue(QueueName="shared-inbox")["QueueUrl"]
        queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:shared-inbox"
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        sent = {sns.publish(TopicArn=topic, Message=f"m{index}")["MessageId"] for index in range(20)}

        delivered = [json.loads(body)["MessageId"] for body in drain(sqs, queue, 20)]
        assert sorted(delivered) == sorted(sent)
        # Anything delivered twice would be waiting now; a short receive finds nothing more.
        assert "Messages" not in sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=2)
    finally:
        stop(first)
        stop(second)
