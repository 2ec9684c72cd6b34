"""What every SNS handler works with: topics and subscriptions in Redis, their ARNs, SNS's errors.

A topic is a notification channel of the runtime (``{p}:topic:<name>`` and its log): the
pipeline's topic (``settings.topic``) always exists, as the pipeline's queue does; others
exist once CreateTopic made them. Subscriptions are records in one hash, read by the
delivery thread of every ``serve`` process.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import redis

from orchestrator.api.errors import ApiError
from orchestrator.api.pagination import PageTokens
from orchestrator.api.shapes import ServiceShapes
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.notifications import follow_for_delivery
from orchestrator.settings import Settings

TOPIC_NAME = re.compile(r"[A-Za-z0-9_-]{1,256}")
TOPIC_NAME_RULE = "1 to 256 ASCII letters, digits, hyphens or underscores"


def sns_error(code: str, message: str, status: int = 400) -> ApiError:
    """An SNS error; botocore raises ``client.exceptions.<code>Exception`` for a modelled ``code``."""
    return ApiError(code, message, status=status)


def invalid_parameter(message: str) -> ApiError:
    return sns_error("InvalidParameter", f"Invalid parameter: {message}")


def not_found(message: str) -> ApiError:
    return sns_error("NotFound", message, status=404)


@dataclass(frozen=True)
class Sns:
    """The runtime's topics and the endpoint's configuration, handed to every handler."""

    redis: redis.Redis
    settings: Settings
    region: str
    account: str
    tokens: PageTokens
    shapes: ServiceShapes

    @property
    def keys(self) -> Keys:
        return Keys(self.settings.prefix)

    def topic_arn(self, name: str) -> str:
        return f"arn:aws:sns:{self.region}:{self.account}:{name}"

    def topic_of(self, arn: str, member: str = "TopicArn") -> str:
        """The name of the existing topic ``arn`` names.

        Raises:
            ApiError: InvalidParameter for what is no topic ARN of this region, AuthorizationError
                for another account's, NotFound for a topic that does not exist.
        """
        fields = arn.split(":")
        if len(fields) != 6 or fields[:3] != ["arn", "aws", "sns"] or not TOPIC_NAME.fullmatch(fields[5]):
            raise invalid_parameter(
                f"{member} {arn[:200]!r} is not a topic ARN: expected"
                f" arn:aws:sns:{self.region}:{self.account}:<topic name>"
            )
        if fields[4] != self.account:
            raise sns_error(
                "AuthorizationError",
                f"User is not authorized to perform this action on resource {arn[:200]!r}: it is of account"
                f" {fields[4][:20]!r}, and this endpoint serves account {self.account!r}",
                status=403,
            )
        if fields[3] != self.region:
            raise invalid_parameter(
                f"{member} {arn[:200]!r} names region {fields[3]!r}, but this endpoint serves region"
                f" {self.region!r}"
            )
        if self.topic(fields[5]) is None:
            raise not_found(f"Topic does not exist: {arn}")
        return fields[5]

    # Topics

    def topic(self, name: str) -> dict[str, Any] | None:
        """What CreateTopic kept of topic ``name`` (attributes, tags), or None when there is none."""
        raw = self.redis.hget(self.keys.sns_topics, name)
        if raw is not None:
            return dict(json.loads(raw))
        return {"attributes": {}, "tags": []} if name == self.settings.topic else None

    def topic_names(self) -> list[str]:
        names = {key.decode() for key in self.redis.hkeys(self.keys.sns_topics)}
        return sorted(names | {self.settings.topic})

    def create_topic(self, name: str, record: dict[str, Any]) -> dict[str, Any]:
        """Keep ``record`` for topic ``name`` unless it has one; the record it has now."""
        if self.redis.hsetnx(self.keys.sns_topics, name, json.dumps(record)):
            return record
        return self.topic(name) or record

    def save_topic(self, name: str, record: dict[str, Any]) -> None:
        self.redis.hset(self.keys.sns_topics, name, json.dumps(record))

    def delete_topic(self, name: str) -> None:
        """Remove the topic's record and its subscriptions (the pipeline's topic itself stays)."""
        doomed = [sid for sid, sub in self.subscriptions().items() if sub["topic"] == name]
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(self.keys.sns_topics, name)
        if doomed:
            pipe.hdel(self.keys.sns_subscriptions, *doomed)
        pipe.execute()

    # Subscriptions

    def subscription_arn(self, topic: str, subscription_id: str) -> str:
        return f"{self.topic_arn(topic)}:{subscription_id}"

    def subscriptions(self) -> dict[str, dict[str, Any]]:
        """Every subscription by id, oldest first."""
        raw = self.redis.hgetall(self.keys.sns_subscriptions)
        records = {key.decode(): json.loads(value) for key, value in raw.items()}
        return dict(sorted(records.items(), key=lambda item: (item[1]["created"], item[0])))

    def subscribe(self, topic: str, protocol: str, endpoint: str, attributes: dict[str, str]) -> str:
        """The id of the topic's subscription of ``endpoint`` by ``protocol``, made if new.

        The delivery group on the topic's log is made first, so every message published
        after the subscription exists is delivered to it.
        """
        for subscription_id, record in self.subscriptions().items():
            if (record["topic"], record["protocol"], record["endpoint"]) == (topic, protocol, endpoint):
                return subscription_id
        follow_for_delivery(self.redis, self.settings, topic)
        seconds, microseconds = self.redis.time()
        subscription_id = str(uuid.uuid4())
        record = {
            "topic": topic,
            "protocol": protocol,
            "endpoint": endpoint,
            "attributes": attributes,
            # Messages logged from this millisecond on are this subscription's (log ids are ms-n).
            "since": seconds * 1000 + microseconds // 1000,
            "created": seconds + microseconds / 1e6,
        }
        self.redis.hset(self.keys.sns_subscriptions, subscription_id, json.dumps(record))
        return subscription_id

    def unsubscribe(self, subscription_id: str) -> bool:
        return bool(self.redis.hdel(self.keys.sns_subscriptions, subscription_id))

    def subscription_id(self, arn: str) -> str:
        """The id a subscription ARN ends with.

        Raises:
            ApiError: InvalidParameter for what is no subscription ARN of this region and account.
        """
        fields = arn.split(":")
        if len(fields) != 7 or fields[:3] != ["arn", "aws", "sns"]:
            raise invalid_parameter(
                f"SubscriptionArn {arn[:200]!r} is not a subscription ARN: expected"
                f" arn:aws:sns:{self.region}:{self.account}:<topic name>:<subscription id>"
            )
        if fields[3] != self.region or fields[4] != self.account:
            raise invalid_parameter(
                f"SubscriptionArn {arn[:200]!r} names region {fields[3]!r} and account {fields[4]!r}, but"
                f" this endpoint serves region {self.region!r} and account {self.account!r}"
            )
        return fields[6]
