"""Subscribe, Unsubscribe, ListSubscriptions and ListSubscriptionsByTopic.

Protocols: ``sqs`` (the endpoint is a queue ARN of this endpoint: the message goes onto that
redstep queue) and ``http``/``https`` (the message is POSTed to the URL). A subscription is
confirmed at once: redstep sends no SubscriptionConfirmation, since whoever holds the keys
already owns every endpoint it could confirm.
"""

from __future__ import annotations

from typing import Any

from orchestrator.api.pagination import listing_key
from orchestrator.api.sns.context import Sns, invalid_parameter, not_found
from orchestrator.api.sns.topics import PAGE_SIZE
from orchestrator.api.sqs.context import QUEUE_NAME

PROTOCOLS = ("sqs", "http", "https")
ATTRIBUTES = ("RawMessageDelivery", "DeliveryPolicy")


def subscribe(sns: Sns, request: dict[str, Any]) -> dict[str, Any]:
    topic = sns.topic_of(request["TopicArn"])
    protocol = request["Protocol"].lower()
    endpoint = request.get("Endpoint") or ""
    if protocol not in PROTOCOLS:
        raise invalid_parameter(
            f"Protocol {request['Protocol'][:50]!r}: redstep delivers to {', '.join(PROTOCOLS)} subscriptions"
        )
    if protocol == "sqs":
        _check_queue_arn(sns, endpoint)
    elif not endpoint.lower().startswith(f"{protocol}://") or len(endpoint) <= len(protocol) + 3:
        raise invalid_parameter(
            f"Endpoint {endpoint[:200]!r}: an {protocol} subscription needs a {protocol}:// URL"
        )
    attributes = dict(request.get("Attributes", {}))
    for name, value in attributes.items():
        if name not in ATTRIBUTES:
            raise invalid_parameter(
                f"Attributes: {name[:100]!r} is not supported by redstep (supported: {', '.join(ATTRIBUTES)})"
            )
        if name == "RawMessageDelivery" and value.lower() not in ("true", "false"):
            raise invalid_parameter(
                f"Attributes: RawMessageDelivery must be true or false, not {value[:20]!r}"
            )
    subscription_id = sns.subscribe(topic, protocol, endpoint, attributes)
    return {"SubscriptionArn": sns.subscription_arn(topic, subscription_id)}


def unsubscribe(sns: Sns, request: dict[str, Any]) -> dict[str, Any]:
    arn = request["SubscriptionArn"]
    if not sns.unsubscribe(sns.subscription_id(arn)):
        raise not_found(f"Subscription does not exist: {arn[:200]}")
    return {}


def list_subscriptions(sns: Sns, request: dict[str, Any]) -> dict[str, Any]:
    return _page(sns, list(sns.subscriptions().items()), listing_key("ListSubscriptions"), request)


def list_subscriptions_by_topic(sns: Sns, request: dict[str, Any]) -> dict[str, Any]:
    topic = sns.topic_of(request["TopicArn"])
    chosen = [(sid, sub) for sid, sub in sns.subscriptions().items() if sub["topic"] == topic]
    return _page(sns, chosen, listing_key("ListSubscriptionsByTopic", topic=topic), request)


def _page(
    sns: Sns, subscriptions: list[tuple[str, dict[str, Any]]], listing: str, request: dict[str, Any]
) -> dict[str, Any]:
    if request.get("NextToken"):
        # The cursor is where the last one answered sorts (creation time, id): a subscription
        # removed since changes nothing for the rest.
        after = tuple(sns.tokens.read(request["NextToken"], listing))
        subscriptions = [(sid, sub) for sid, sub in subscriptions if (sub["created"], sid) > after]
    page = subscriptions[:PAGE_SIZE]
    answer: dict[str, Any] = {
        "Subscriptions": [
            {
                "SubscriptionArn": sns.subscription_arn(sub["topic"], sid),
                "Owner": sns.account,
                "Protocol": sub["protocol"],
                "Endpoint": sub["endpoint"],
                "TopicArn": sns.topic_arn(sub["topic"]),
            }
            for sid, sub in page
        ]
    }
    if len(subscriptions) > PAGE_SIZE:
        last_id, last = page[-1]
        answer["NextToken"] = sns.tokens.issue(listing, [last["created"], last_id])
    return answer


def _check_queue_arn(sns: Sns, endpoint: str) -> None:
    fields = endpoint.split(":")
    if len(fields) != 6 or fields[:3] != ["arn", "aws", "sqs"] or not QUEUE_NAME.fullmatch(fields[5]):
        raise invalid_parameter(
            f"Endpoint {endpoint[:200]!r}: an sqs subscription needs a queue ARN,"
            f" arn:aws:sqs:{sns.region}:{sns.account}:<queue name> (GetQueueAttributes QueueArn)"
        )
    if fields[3] != sns.region or fields[4] != sns.account:
        raise invalid_parameter(
            f"Endpoint {endpoint[:200]!r} names region {fields[3]!r} and account {fields[4]!r}, but this"
            f" endpoint serves region {sns.region!r} and account {sns.account!r}"
        )
