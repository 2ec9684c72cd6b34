"""The service integrations Step Functions carries out itself: ``sns:publish`` and ``sqs:sendMessage``.

Pure: each call says what the task returns and what it causes (a message on a topic or a
queue); the Redis runtime makes the effect part of the transition's commit, and the local
runner keeps it in memory. Both therefore give a state the same result.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from orchestrator.asl import errors
from orchestrator.asl.sdk_responses import (
    JSON_1_0,
    XML,
    response_headers,
    sdk_v1_failure,
    sdk_v2_failure,
    with_metadata,
)
from orchestrator.sns_messages import PublishRefused, checked_publish
from orchestrator.sqs_messages import (
    MessageRefused,
    check_message,
    check_supported,
    md5_of_attributes,
    md5_of_body,
)

SNS_PUBLISH = "sns:publish"
TOPIC_NOT_FOUND = "Topic does not exist"
MISSING_BODY = "The request must contain the parameter MessageBody."
# SQS's code and words for a queue that does not exist (SendMessage's QueueDoesNotExist).
NO_SUCH_QUEUE = "AWS.SimpleQueueService.NonExistentQueue"
NO_SUCH_QUEUE_MESSAGE = "The specified queue does not exist."
# The SendMessage errors SQS's API model names, by error code: each is an exception class of its own.
MODELED_ERRORS = {
    "InvalidMessageContents": "InvalidMessageContentsException",
    NO_SUCH_QUEUE: "QueueDoesNotExistException",
}
SQS_SEND_MESSAGE = "sqs:sendMessage"
# The length of SNS's PublishResponse (XML, its MessageId and RequestId of fixed width), as
# every AWS-recorded sns:publish result gives it.
PUBLISH_RESPONSE_LENGTH = 294


class Targets(Protocol):
    """Which queues and topics exist, for the messages and notifications service tasks send."""

    def queue_exists(self, name: str) -> bool: ...

    def topic_exists(self, name: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Effect:
    """What a service task causes: ``kind`` "publish" (to a topic) or "send" (to a queue).

    A message sent carries the MessageId the task's result names (``message_id``) and the
    message attributes the task gave (``attributes``).
    """

    kind: str
    target: str
    payload: Any
    message_id: str = ""
    attributes: dict[str, Any] | None = None  # a message's SQS message attributes


def carry_out(
    action: dict[str, Any], now: float, targets: Targets | None = None
) -> tuple[dict[str, Any], Effect | None]:
    """The report of a RunService ``action`` (TaskSucceeded or TaskFailed, without its token) and its effect.

    With ``targets``, a message for a queue that does not exist fails as SQS refuses it
    (QueueDoesNotExist), and a notification for a topic that does not exist as SNS refuses it
    (NotFound); without them (the local runner has no queues or topics) every one exists.

    An action with ``sdk`` named the AWS SDK integration (``arn:aws:states:::aws-sdk:sqs:sendMessage``),
    whose result is the API's answer alone, without the response's metadata.
    """
    service, parameters, sdk = action["service"], action.get("parameters") or {}, bool(action.get("sdk"))
    if service == SNS_PUBLISH:
        topic = topic_name(str(parameters.get("TopicArn", "")))
        if targets is not None and not targets.topic_exists(topic):
            return topic_not_found(sdk), None
        try:
            checked = checked_publish({**parameters, "Message": publish_text(parameters.get("Message"))})
        except PublishRefused as refused:
            return publish_refused(refused, sdk), None
        message = envelope({**parameters, **checked}, now)
        answer = {"MessageId": message["MessageId"]}
        output = answer if sdk else publish_result(message["MessageId"], now)
        return {"type": "TaskSucceeded", "output": output}, Effect("publish", topic, message)
    if service == SQS_SEND_MESSAGE:
        body = parameters.get("MessageBody")
        if body is None:
            return refused_message(MessageRefused("MissingParameter", MISSING_BODY), sdk), None
        queue = str(parameters.get("QueueUrl", "")).rstrip("/").rsplit("/", 1)[-1]
        if targets is not None and not targets.queue_exists(queue):
            return refused_message(MessageRefused(NO_SUCH_QUEUE, NO_SUCH_QUEUE_MESSAGE), sdk), None
        text, attributes = message_text(body), parameters.get("MessageAttributes") or {}
        try:
            check_supported(parameters)
            check_message(text, attributes)
        except MessageRefused as refused:
            return refused_message(refused, sdk), None
        answer = {"MD5OfMessageBody": md5_of_body(text), "MessageId": str(uuid.uuid4())}
        if attributes:
            answer["MD5OfMessageAttributes"] = md5_of_attributes(attributes)
        output = answer if sdk else send_result(answer, now)
        effect = Effect("send", queue, body, answer["MessageId"], attributes)
        return {"type": "TaskSucceeded", "output": output}, effect
    cause = f"The service integration {service!r} is not supported"
    return {"type": "TaskFailed", "error": errors.RUNTIME, "cause": cause}, None


def topic_not_found(sdk: bool) -> dict[str, Any]:
    """The TaskFailed report of a Publish to a topic that does not exist, as AWS recorded it
    (test_sns_task_service test_publish_base_error_topic_arn: ``SNS.NotFoundException``, 404)."""
    if sdk:
        return sdk_v2_failure("Sns.NotFoundException", TOPIC_NOT_FOUND, "Sns", status=404)
    return sdk_v1_failure("SNS.NotFoundException", TOPIC_NOT_FOUND, "AmazonSNS", "NotFound", status=404)


def publish_text(message: Any) -> str:
    """The text a Publish carries for a task's Message: text as given, a JSON value as its JSON text.

    Raises:
        PublishRefused: when there is no Message.
    """
    if message is None:
        raise PublishRefused("Message Reason: no value for required parameter")
    return message if isinstance(message, str) else json.dumps(message)


def publish_refused(refused: PublishRefused, sdk: bool) -> dict[str, Any]:
    """The TaskFailed report of a Publish SNS refuses, as AWS recorded one (test_fifo_message_attribute:
    ``SNS.InvalidParameterException``, "Invalid parameter: ...", Error Code InvalidParameter)."""
    message = f"Invalid parameter: {refused.message}"
    if sdk:
        return sdk_v2_failure("Sns.InvalidParameterException", message, "Sns")
    return sdk_v1_failure("SNS.InvalidParameterException", message, "AmazonSNS", "InvalidParameter")


def refused_message(refused: MessageRefused, sdk: bool) -> dict[str, Any]:
    """The TaskFailed report of a SendMessage SQS refuses, as the SDK the integration uses names it.

    AWS recorded the optimized integration's refusal of a missing body (``SQS.AmazonSQSException``,
    SDK v1's name for an error it has no class for, the code in the cause); an AWS SDK call's is
    named as SDK v2 names one (``Sqs.SqsException``). An error SQS models has its own class in both.
    """
    modeled = MODELED_ERRORS.get(refused.code)
    if sdk:
        return sdk_v2_failure(f"Sqs.{modeled or 'SqsException'}", refused.message, "Sqs")
    return sdk_v1_failure(
        f"SQS.{modeled or 'AmazonSQSException'}", refused.message, "AmazonSQS", refused.code
    )


def message_text(body: Any) -> str:
    """The body of the SQS message a sendMessage task's MessageBody makes: text as given, JSON as its text."""
    return body if isinstance(body, str) else json.dumps(body)


def topic_name(topic_arn: str) -> str:
    """The topic's name: the last segment of its ARN (a bare name is its own name)."""
    return topic_arn.rsplit(":", 1)[-1]


def sns_timestamp(now: float) -> str:
    """ISO-8601 UTC with milliseconds and a Z, as SNS writes Timestamp."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def envelope(parameters: dict[str, Any], now: float) -> dict[str, Any]:
    """The SNS message an ``sns:publish`` task with ``parameters`` sends."""
    message = parameters.get("Message")
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": parameters.get("TopicArn", ""),
        "Subject": parameters.get("Subject"),
        # SNS carries a string; a structure is sent as its JSON text.
        "Message": message if isinstance(message, str) else json.dumps(message),
        "Timestamp": sns_timestamp(now),
        "MessageAttributes": delivered_attributes(parameters.get("MessageAttributes") or {}),
    }


def delivered_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """Message attributes as SNS delivers them (``Type``/``Value``), from how Publish takes them."""
    delivered: dict[str, Any] = {}
    for name, attribute in attributes.items():
        if not isinstance(attribute, dict):
            delivered[name] = attribute
            continue
        value = attribute.get("StringValue", attribute.get("BinaryValue", attribute.get("Value")))
        delivered[name] = {"Type": attribute.get("DataType", attribute.get("Type", "String")), "Value": value}
    return delivered


def publish_result(message_id: str, now: float) -> dict[str, Any]:
    """The task output of ``sns:publish``: Publish's answer and the response's metadata, as recorded."""
    request_id = str(uuid.uuid4())
    headers = response_headers(XML, PUBLISH_RESPONSE_LENGTH, now, request_id)
    return with_metadata({"MessageId": message_id}, headers, request_id)


def send_result(answer: dict[str, Any], now: float) -> dict[str, Any]:
    """The task output of ``sqs:sendMessage``: SendMessage's answer and the response's metadata."""
    request_id = str(uuid.uuid4())
    length = len(json.dumps(answer, separators=(",", ":")))
    return with_metadata(answer, response_headers(JSON_1_0, length, now, request_id), request_id)
