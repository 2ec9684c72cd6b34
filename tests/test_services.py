"""The integrations the orchestrator carries out itself: sns:publish and sqs:sendMessage."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
import redis

from orchestrator.asl.definition import StateMachine
from orchestrator.asl.errors import DefinitionError
from orchestrator.local import LocalRunner
from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import BODY_FIELD, Keys
from orchestrator.runtime.loop import Orchestrator
from orchestrator.runtime.queues import Queues
from orchestrator.settings import Settings
from tests.runtime_fixtures import all_finished, create_topic, drive

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


def run_on_stack(
    redis_client: redis.Redis, settings: Settings, machine: str, definition: dict, input: object
) -> dict:
    """Register ``definition``, run one execution of it with an orchestrator alone; its description.

    The queues and topics the tests send to are created first, as CreateQueue and CreateTopic
    make them.
    """
    for queue in ("outbox", "q"):
        Queues(redis_client, settings).create(queue, {})
    for topic in ("news", "t"):
        create_topic(redis_client, settings, topic)
    client = Client(redis_client, settings)
    client.register_machine(machine, definition)
    name = client.start_execution(machine, input)
    drive(
        redis_client,
        settings,
        [Orchestrator(redis_client, settings, "o1")],
        all_finished(1),
        with_worker=False,
    )
    described = client.describe(name)
    assert described is not None
    return described


def test_a_local_send_message_returns_what_sqs_returns_and_records_the_message() -> None:
    result = LocalRunner(StateMachine.parse(SEND, "Send")).run(RECORD)

    assert result.status == "SUCCEEDED"
    sent = result.output["sent"]
    assert sent["MD5OfMessageBody"] == hashlib.md5(json.dumps(RECORD["record"]).encode()).hexdigest()
    assert sent["MessageId"]
    assert result.effects == [
        {"kind": "send", "target": "outbox", "payload": RECORD["record"], "message_id": sent["MessageId"]}
    ]


def test_a_send_message_on_the_stack_puts_the_body_on_the_named_queue_in_the_same_commit(
    redis_client: redis.Redis, settings: Settings
) -> None:
    described = run_on_stack(redis_client, settings, "Send", SEND, RECORD)

    assert described["status"] == "SUCCEEDED"
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
    on_stack = run_on_stack(redis_client, settings, "Notify", publish, {"hello": "world"})

    assert local.status == on_stack["status"] == "SUCCEEDED"
    assert (
        set(local.output)
        == set(on_stack["output"])
        >= {"MessageId", "SdkHttpMetadata", "SdkResponseMetadata"}
    )
    assert local.effects[0]["kind"] == "publish" and local.effects[0]["target"] == "news"
    assert json.loads(local.effects[0]["payload"]["Message"]) == {"hello": "world"}


# The shapes AWS recorded for these integrations' results (LocalStack's snapshots of real
# executions: test_sqs_task_service test_send_message, test_sns_task_service test_publish_base):
# the API's answer, then the response's metadata. An AWS SDK integration's result is the answer
# alone ("Learning to use AWS service SDK integrations in Step Functions"; the recorded
# aws-sdk:sfn:startExecution result holds only ExecutionArn and StartDate).
METADATA_HEADERS = {"connection", "Content-Length", "Content-Type", "Date", "x-amzn-RequestId"}


def task(resource: str, parameters: dict, result_path: str, following: str | None = None) -> dict:
    state = {"Type": "Task", "Resource": resource, "Parameters": parameters, "ResultPath": result_path}
    return state | ({"Next": following} if following else {"End": True})


BOTH_FORMS = {
    "StartAt": "Send",
    "States": {
        "Send": task(
            "arn:aws:states:::sqs:sendMessage", {"QueueUrl": "q", "MessageBody": "hi"}, "$.send", "Publish"
        ),
        "Publish": task(
            "arn:aws:states:::sns:publish",
            {"TopicArn": "arn:aws:sns:us-east-1:000000000000:t", "Message": "hi"},
            "$.publish",
            "SdkSend",
        ),
        "SdkSend": task(
            "arn:aws:states:::aws-sdk:sqs:sendMessage",
            {"QueueUrl": "q", "MessageBody": {"a": 1}},
            "$.sdkSend",
            "SdkPublish",
        ),
        "SdkPublish": task(
            "arn:aws:states:::aws-sdk:sns:publish",
            {"TopicArn": "arn:aws:sns:us-east-1:000000000000:t", "Message": "hi"},
            "$.sdkPublish",
        ),
    },
}


def test_optimized_results_carry_the_responses_metadata_as_aws_recorded_it() -> None:
    output = LocalRunner(StateMachine.parse(BOTH_FORMS, "Both")).run({}).output

    for result, content_type, length in (
        (output["send"], "application/x-amz-json-1.0", "106"),
        (output["publish"], "text/xml", "294"),
    ):
        metadata = result["SdkHttpMetadata"]
        assert set(metadata) == {"AllHttpHeaders", "HttpHeaders", "HttpStatusCode"}
        assert set(metadata["HttpHeaders"]) == set(metadata["AllHttpHeaders"]) == METADATA_HEADERS
        assert metadata["HttpHeaders"]["Content-Type"] == content_type
        assert metadata["HttpHeaders"]["Content-Length"] == length
        assert metadata["AllHttpHeaders"]["Content-Length"] == [length]
        assert metadata["HttpStatusCode"] == 200
        assert result["SdkResponseMetadata"] == {"RequestId": metadata["HttpHeaders"]["x-amzn-RequestId"]}
    assert set(output["send"]) == {"MD5OfMessageBody", "MessageId", "SdkHttpMetadata", "SdkResponseMetadata"}
    assert set(output["publish"]) == {"MessageId", "SdkHttpMetadata", "SdkResponseMetadata"}


def test_the_aws_sdk_forms_give_the_apis_answer_alone_and_name_their_resource_type_aws_sdk() -> None:
    result = LocalRunner(StateMachine.parse(BOTH_FORMS, "Both")).run({})

    assert result.status == "SUCCEEDED", result.cause
    assert set(result.output["sdkSend"]) == {"MD5OfMessageBody", "MessageId"}
    assert (
        result.output["sdkSend"]["MD5OfMessageBody"] == hashlib.md5(json.dumps({"a": 1}).encode()).hexdigest()
    )
    assert set(result.output["sdkPublish"]) == {"MessageId"}
    scheduled = [(e["resourceType"], e["resource"]) for e in result.history if e["type"] == "TaskScheduled"]
    assert scheduled == [
        ("sqs", "sendMessage"),
        ("sns", "publish"),
        ("aws-sdk:sqs", "sendMessage"),
        ("aws-sdk:sns", "publish"),
    ]
    assert [effect["kind"] for effect in result.effects] == ["send", "publish", "send", "publish"]


def test_an_aws_sdk_call_has_no_run_a_job_pattern() -> None:
    definition = {
        "StartAt": "S",
        "States": {"S": task("arn:aws:states:::aws-sdk:sqs:sendMessage.sync", {}, "$.s")},
    }

    with pytest.raises(
        DefinitionError, match=r"unsupported resource 'arn:aws:states:::aws-sdk:sqs:sendMessage\.sync'"
    ):
        StateMachine.parse(definition, "Sync")


def test_the_aws_sdk_forms_send_and_publish_on_the_stack_in_the_transitions_commit(
    redis_client: redis.Redis, settings: Settings
) -> None:
    described = run_on_stack(redis_client, settings, "Both", BOTH_FORMS, {})

    assert described["status"] == "SUCCEEDED", described
    assert set(described["output"]["sdkSend"]) == {"MD5OfMessageBody", "MessageId"}
    assert set(described["output"]["sdkPublish"]) == {"MessageId"}
    entries = redis_client.xrange(Keys(settings.prefix).queue("q"))
    assert [json.loads(fields[BODY_FIELD.encode()]) for _, fields in entries] == ["hi", {"a": 1}]


@pytest.mark.parametrize(
    ("resource", "error", "details"),
    [
        (
            "arn:aws:states:::sqs:sendMessage",
            "SQS.AmazonSQSException",
            r"\(Service: AmazonSQS; Status Code: 400; Error Code: MissingParameter; "
            r"Request ID: [0-9a-f-]{36}; Proxy: null\)",
        ),
        (
            "arn:aws:states:::aws-sdk:sqs:sendMessage",
            "Sqs.SqsException",
            r"\(Service: Sqs, Status Code: 400, Request ID: [0-9a-f-]{36}\) \(SDK Attempt Count: 1\)",
        ),
    ],
)
def test_a_send_message_without_a_body_fails_as_sqs_refuses_it_and_sends_nothing(
    resource: str, error: str, details: str
) -> None:
    # AWS recorded the optimized form's refusal (test_task_service_sqs test_send_message_empty_body).
    definition = {
        "StartAt": "S",
        "States": {"S": task(resource, {"QueueUrl": "q", "MessageBody": None}, "$.s")},
    }

    result = LocalRunner(StateMachine.parse(definition, "Empty")).run({})

    assert (result.status, result.error) == ("FAILED", error)
    assert re.fullmatch(r"The request must contain the parameter MessageBody\. " + details, result.cause)
    assert result.effects == []


# AWS's recorded execution (LocalStack's snapshot, test_sqs_task_service test_send_message_attributes,
# template sqs_send_msg_attributes): the result adds MD5OfMessageAttributes, and the response's
# Content-Length grows to 166; the message is received with its attributes. The digest of this
# attribute is the one the SQS developer guide works out ("Calculating the MD5 message digest for
# message attributes").
SELLER = {"SellerName": {"DataType": "String", "StringValue": "Example Store"}}
SELLER_MD5 = "cd28f3b68aeee4b2eac9c66f2f694b58"
SEND_WITH_ATTRIBUTES = {
    "StartAt": "Send",
    "States": {
        "Send": task(
            "arn:aws:states:::sqs:sendMessage",
            {"QueueUrl": "q", "MessageBody.$": "$.message", "MessageAttributes": SELLER},
            "$.sent",
        )
    },
}


def test_a_send_messages_attributes_are_digested_and_sent_with_it_as_aws_recorded() -> None:
    result = LocalRunner(StateMachine.parse(SEND_WITH_ATTRIBUTES, "Attributes")).run({"message": "hi"})

    sent = result.output["sent"]
    assert sent["MD5OfMessageAttributes"] == SELLER_MD5
    assert sent["MD5OfMessageBody"] == hashlib.md5(b"hi").hexdigest()
    assert sent["SdkHttpMetadata"]["HttpHeaders"]["Content-Length"] == "166"
    sent_under = sent["MessageId"]
    assert result.effects == [
        {"kind": "send", "target": "q", "payload": "hi", "attributes": SELLER, "message_id": sent_under}
    ]


def test_a_send_messages_attributes_reach_the_queue_on_the_stack(
    redis_client: redis.Redis, settings: Settings
) -> None:
    described = run_on_stack(redis_client, settings, "Attributes", SEND_WITH_ATTRIBUTES, {"message": "hi"})

    assert described["status"] == "SUCCEEDED", described
    assert described["output"]["sent"]["MD5OfMessageAttributes"] == SELLER_MD5
    [(_, fields)] = redis_client.xrange(Keys(settings.prefix).queue("q"))
    assert json.loads(fields[b"attributes"]) == SELLER


@pytest.mark.parametrize(
    ("attributes", "body", "error", "code", "says"),
    [
        (
            {"n": {"DataType": "Number", "StringValue": "many"}},
            "hi",
            "SQS.AmazonSQSException",
            "InvalidParameterValue",
            "MessageAttributes.n.StringValue 'many' is not a number",
        ),
        (
            {"a": {"DataType": "Text", "StringValue": "v"}},
            "hi",
            "SQS.AmazonSQSException",
            "InvalidParameterValue",
            "MessageAttributes.a.DataType 'Text' must be String, Number or Binary",
        ),
        (
            ["not", "an", "object"],
            "hi",
            "SQS.AmazonSQSException",
            "InvalidParameterValue",
            "MessageAttributes must be an object",
        ),
        (
            {},
            "bell \x07",
            "SQS.InvalidMessageContentsException",
            "InvalidMessageContents",
            "MessageBody contains the character U+0007",
        ),
    ],
)
def test_a_message_sqs_would_refuse_fails_the_task_as_sqs_refuses_it_and_sends_nothing(
    attributes: object, body: str, error: str, code: str, says: str
) -> None:
    parameters = {"QueueUrl": "q", "MessageBody": body, "MessageAttributes": attributes}
    definition = {
        "StartAt": "S",
        "States": {"S": task("arn:aws:states:::sqs:sendMessage", parameters, "$.s")},
    }

    result = LocalRunner(StateMachine.parse(definition, "Refused")).run({})

    assert (result.status, result.error) == ("FAILED", error)
    assert says in result.cause
    assert f"(Service: AmazonSQS; Status Code: 400; Error Code: {code}; Request ID: " in result.cause
    assert result.effects == []


def test_an_aws_sdk_send_message_sqs_would_refuse_fails_with_the_sdk_v2s_names() -> None:
    parameters = {"QueueUrl": "q", "MessageBody": "bell \x07"}
    definition = {
        "StartAt": "S",
        "States": {"S": task("arn:aws:states:::aws-sdk:sqs:sendMessage", parameters, "$.s")},
    }

    result = LocalRunner(StateMachine.parse(definition, "Refused")).run({})

    assert (result.status, result.error) == ("FAILED", "Sqs.InvalidMessageContentsException")
    assert "(Service: Sqs, Status Code: 400, Request ID: " in result.cause


def test_a_send_message_asking_for_a_delay_or_a_fifo_queue_fails_saying_redstep_has_none() -> None:
    # SendMessage on redstep's queues refuses these members; a task asking for them is refused the same
    # way rather than sent without them.
    parameters = {"QueueUrl": "q", "MessageBody": "hi", "DelaySeconds": 30}
    state = task("arn:aws:states:::sqs:sendMessage", parameters, "$.s")

    result = LocalRunner(StateMachine.parse({"StartAt": "S", "States": {"S": state}}, "Delayed")).run({})

    assert (result.status, result.error) == ("FAILED", "SQS.AmazonSQSException")
    assert result.cause.startswith("DelaySeconds is not supported by redstep: its queues are standard queues")
    assert result.effects == []


NO_QUEUE = {"QueueUrl": "https://sqs.us-east-1.amazonaws.com/000000000000/no-such-queue", "MessageBody": "hi"}
NO_TOPIC = {"TopicArn": "arn:aws:sns:us-east-1:000000000000:no-such-topic", "Message": "hi"}
V1_DETAILS = r"\(Service: {}; Status Code: {}; Error Code: {}; Request ID: [0-9a-f-]{{36}}; Proxy: null\)"
V2_DETAILS = r"\(Service: {}, Status Code: {}, Request ID: [0-9a-f-]{{36}}\) \(SDK Attempt Count: 1\)"


@pytest.mark.parametrize(
    ("resource", "parameters", "error", "cause"),
    [
        (
            "arn:aws:states:::sqs:sendMessage",
            NO_QUEUE,
            "SQS.QueueDoesNotExistException",
            r"The specified queue does not exist\. "
            + V1_DETAILS.format("AmazonSQS", 400, r"AWS\.SimpleQueueService\.NonExistentQueue"),
        ),
        (
            "arn:aws:states:::aws-sdk:sqs:sendMessage",
            NO_QUEUE,
            "Sqs.QueueDoesNotExistException",
            r"The specified queue does not exist\. " + V2_DETAILS.format("Sqs", 400),
        ),
        # AWS recorded this one (test_sns_task_service test_publish_base_error_topic_arn).
        (
            "arn:aws:states:::sns:publish",
            NO_TOPIC,
            "SNS.NotFoundException",
            "Topic does not exist " + V1_DETAILS.format("AmazonSNS", 404, "NotFound"),
        ),
        (
            "arn:aws:states:::aws-sdk:sns:publish",
            NO_TOPIC,
            "Sns.NotFoundException",
            "Topic does not exist " + V2_DETAILS.format("Sns", 404),
        ),
    ],
)
def test_a_message_or_notification_for_a_target_that_does_not_exist_fails_the_task_and_sends_nothing(
    redis_client: redis.Redis, settings: Settings, resource: str, parameters: dict, error: str, cause: str
) -> None:
    # SendMessage answers QueueDoesNotExist and Publish NotFound; the task fails with it, as the SDK
    # the integration uses names it, and Catch or Retry can take it.
    definition = {"StartAt": "S", "States": {"S": task(resource, parameters, "$.s")}}
    channel = redis_client.pubsub()
    channel.subscribe(Keys(settings.prefix).topic("no-such-topic"))

    described = run_on_stack(redis_client, settings, "Nowhere", definition, {})

    assert (described["status"], described["error"]) == ("FAILED", error)
    assert re.fullmatch(cause, described["cause"])
    assert not Queues(redis_client, settings).exists("no-such-queue")
    assert channel.get_message(timeout=0.1)["type"] == "subscribe"
    assert channel.get_message(timeout=0.2) is None  # nothing was published
    channel.close()


def publish_state(resource: str, parameters: dict) -> dict:
    return {"StartAt": "P", "States": {"P": task(resource, parameters, "$.p")}}


def test_a_publish_with_a_json_message_structure_delivers_its_default_message() -> None:
    parameters = {
        "TopicArn": "arn:aws:sns:us-east-1:000000000000:t",
        "MessageStructure": "json",
        "Message": {"default": "for everyone", "sqs": "for queues"},
    }
    definition = publish_state("arn:aws:states:::sns:publish", parameters)

    result = LocalRunner(StateMachine.parse(definition, "Structured")).run({})

    assert result.status == "SUCCEEDED"
    assert result.effects[0]["payload"]["Message"] == "for everyone"


@pytest.mark.parametrize(
    ("parameters", "says"),
    [
        (
            {"Subject": "two\nlines", "Message": "hi"},
            "Subject: a subject is 1 to 100 printable ASCII characters",
        ),
        (
            {"Message": "hi", "MessageAttributes": {"a": {"DataType": "Text", "StringValue": "v"}}},
            "MessageAttributes: The message attribute 'a' has an invalid message attribute type 'Text'",
        ),
        ({"Message": "hi", "MessageAttributes": {"a": {"DataType": "String"}}}, "must contain a non-empty"),
        ({}, "Message Reason: no value for required parameter"),
        ({"Message": ""}, "Message: Empty message"),
        ({"Message": "{}", "MessageStructure": "json"}, "No default entry in JSON message body"),
    ],
)
def test_a_publish_sns_would_refuse_fails_the_task_as_sns_refuses_it_and_publishes_nothing(
    parameters: dict, says: str
) -> None:
    # AWS recorded one such refusal (test_sns_task_service test_fifo_message_attribute):
    # SNS.InvalidParameterException, "Invalid parameter: ... (Service: AmazonSNS; Status Code: 400;
    # Error Code: InvalidParameter; ...)". Publish's own checks decide what is refused.
    arn = {"TopicArn": "arn:aws:sns:us-east-1:000000000000:t"}
    definition = publish_state("arn:aws:states:::sns:publish", arn | parameters)

    result = LocalRunner(StateMachine.parse(definition, "Refused")).run({})

    assert (result.status, result.error) == ("FAILED", "SNS.InvalidParameterException")
    assert result.cause.startswith("Invalid parameter: ") and says in result.cause
    assert "(Service: AmazonSNS; Status Code: 400; Error Code: InvalidParameter; Request ID: " in result.cause
    assert result.effects == []


def test_an_aws_sdk_publish_sns_would_refuse_fails_with_the_sdk_v2s_names() -> None:
    arn = "arn:aws:sns:us-east-1:000000000000:t"
    definition = publish_state("arn:aws:states:::aws-sdk:sns:publish", {"TopicArn": arn, "Message": ""})

    result = LocalRunner(StateMachine.parse(definition, "Refused")).run({})

    assert (result.status, result.error) == ("FAILED", "Sns.InvalidParameterException")
    assert "(Service: Sns, Status Code: 400, Request ID: " in result.cause
