"""The SNS actions served, by name (the ``Action`` of the form-encoded query request)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.api.sns import publishing, subscriptions, topics
from orchestrator.api.sns.context import Sns

Action = Callable[[Sns, dict[str, Any]], dict[str, Any]]

ACTIONS: dict[str, Action] = {
    "CreateTopic": topics.create_topic,
    "ListTopics": topics.list_topics,
    "DeleteTopic": topics.delete_topic,
    "GetTopicAttributes": topics.get_topic_attributes,
    "SetTopicAttributes": topics.set_topic_attributes,
    "Publish": publishing.publish,
    "PublishBatch": publishing.publish_batch,
    "Subscribe": subscriptions.subscribe,
    "Unsubscribe": subscriptions.unsubscribe,
    "ListSubscriptions": subscriptions.list_subscriptions,
    "ListSubscriptionsByTopic": subscriptions.list_subscriptions_by_topic,
}

__all__ = ["ACTIONS", "Action", "Sns"]
