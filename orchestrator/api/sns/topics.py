"""CreateTopic, ListTopics, DeleteTopic, GetTopicAttributes and SetTopicAttributes."""

from __future__ import annotations

import json
from typing import Any

from orchestrator.api.errors import ApiError
from orchestrator.api.pagination import listing_key
from orchestrator.api.sns.context import TOPIC_NAME, TOPIC_NAME_RULE, Sns, invalid_parameter

PAGE_SIZE = 100
"""SNS answers ListTopics and ListSubscriptions 100 at a time."""
SETTABLE = ("DisplayName", "Policy", "DeliveryPolicy", "TracingConfig", "SignatureVersion", "KmsMasterKeyId")
MAX_TAGS = 50


def create_topic(sns: Sns, request: dict[str, Any]) -> dict[str, Any]:
    name = request["Name"]
    if name.endswith(".fifo") or request.get("Attributes", {}).get("FifoTopic") == "true":
        raise invalid_parameter("FIFO topics are not supported by redstep; create a standard topic")
    if not TOPIC_NAME.fullmatch(name):
        raise invalid_parameter(f"Topic Name {name[:100]!r}: a topic name is {TOPIC_NAME_RULE}")
    attributes = _settable(request.get("Attributes", {}))
    tags = request.get("Tags", [])
    if len(tags) > MAX_TAGS:
        raise invalid_parameter(f"Tags: a topic takes at most {MAX_TAGS} tags, not {len(tags)}")
    kept = sns.create_topic(name, {"attributes": attributes, "tags": tags})
    # As SNS: creating an existing topic answers its ARN, unless the attributes differ.
    if attributes and kept["attributes"] != attributes:
        raise invalid_parameter(f"Topic {name!r} already exists with different attributes")
    return {"TopicArn": sns.topic_arn(name)}


def list_topics(sns: Sns, request: dict[str, Any]) -> dict[str, Any]:
    names = sns.topic_names()
    listing = listing_key("ListTopics")
    if request.get("NextToken"):
        after = sns.tokens.read(request["NextToken"], listing)
        names = [name for name in names if name > after]
    page = names[:PAGE_SIZE]
    answer: dict[str, Any] = {"Topics": [{"TopicArn": sns.topic_arn(name)} for name in page]}
    if len(names) > PAGE_SIZE:
        answer["NextToken"] = sns.tokens.issue(listing, page[-1])
    return answer


def delete_topic(sns: Sns, request: dict[str, Any]) -> dict[str, Any]:
    # As SNS: deleting a topic that does not exist succeeds.
    try:
        name = sns.topic_of(request["TopicArn"])
    except ApiError as error:
        if error.code == "NotFound":
            return {}
        raise
    sns.delete_topic(name)
    return {}


def get_topic_attributes(sns: Sns, request: dict[str, Any]) -> dict[str, Any]:
    name = sns.topic_of(request["TopicArn"])
    record = sns.topic(name) or {}
    arn = sns.topic_arn(name)
    confirmed = sum(1 for sub in sns.subscriptions().values() if sub["topic"] == name)
    attributes = {
        "TopicArn": arn,
        "Owner": sns.account,
        "DisplayName": "",
        "Policy": json.dumps(_default_policy(sns, arn), separators=(",", ":")),
        "SubscriptionsConfirmed": str(confirmed),
        "SubscriptionsPending": "0",
        "SubscriptionsDeleted": "0",
        "EffectiveDeliveryPolicy": json.dumps(_DELIVERY_POLICY, separators=(",", ":")),
        **record.get("attributes", {}),
    }
    return {"Attributes": attributes}


def set_topic_attributes(sns: Sns, request: dict[str, Any]) -> dict[str, Any]:
    name = sns.topic_of(request["TopicArn"])
    attribute = request["AttributeName"]
    if attribute not in SETTABLE:
        raise invalid_parameter(f"AttributeName: {attribute[:100]!r} is not one of {', '.join(SETTABLE)}")
    record = sns.topic(name) or {"attributes": {}, "tags": []}
    record["attributes"][attribute] = request.get("AttributeValue", "")
    sns.save_topic(name, record)
    return {}


def _settable(attributes: dict[str, str]) -> dict[str, str]:
    unknown = sorted(set(attributes) - set(SETTABLE) - {"FifoTopic"})
    if unknown:
        raise invalid_parameter(f"Attributes: {unknown[0][:100]!r} is not one of {', '.join(SETTABLE)}")
    return {name: value for name, value in attributes.items() if name != "FifoTopic"}


def _default_policy(sns: Sns, arn: str) -> dict[str, Any]:
    return {
        "Version": "2008-10-17",
        "Id": "__default_policy_ID",
        "Statement": [
            {
                "Sid": "__default_statement_ID",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": ["SNS:Publish", "SNS:Subscribe", "SNS:GetTopicAttributes", "SNS:DeleteTopic"],
                "Resource": arn,
                "Condition": {"StringEquals": {"AWS:SourceOwner": sns.account}},
            }
        ],
    }


_DELIVERY_POLICY = {
    "http": {
        "defaultHealthyRetryPolicy": {
            "minDelayTarget": 1,
            "maxDelayTarget": 20,
            "numRetries": 5,
            "numMaxDelayRetries": 0,
            "numNoDelayRetries": 0,
            "numMinDelayRetries": 0,
            "backoffFunction": "exponential",
        },
        "disableSubscriptionOverrides": False,
    }
}
