"""Delivery to SNS subscriptions: a thread of ``serve`` that follows the topics' logs.

Every notification, whether a state machine's ``sns:publish`` or the API's Publish, is
appended to its topic's log stream in the same transaction that PUBLISHes it (the one place
notifications are published). Delivery reads those logs through one consumer group,
``sns-delivery``, made when the topic's first subscription was: each entry goes to one
``serve`` process, is delivered to the subscriptions that existed when it was published, and
is acknowledged only then. So nothing published is lost while a ``serve`` restarts or none
runs (the group remembers where delivery stopped; the log keeps up to
``notification_stream_length`` entries), and an entry a ``serve`` took and died with is
claimed by another after ``RECLAIM_IDLE_MS``. Delivery is at least once, as SNS's is; an SQS
delivery reuses one message id per (subscription, message), so a source queue starts one
execution for it even when it is delivered twice.

``sqs`` subscriptions are delivered in order, on this thread (one Redis round trip a batch);
``http``/``https`` ones on a small pool, with retries and exponential back-off, off the
request path and off this thread.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import socket
import threading
import urllib.error
import urllib.request
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import redis

from orchestrator.api.sns.context import Sns
from orchestrator.runtime.notifications import DELIVERY_GROUP, decoded, follow_for_delivery
from orchestrator.runtime.queues import OutgoingMessage, Queues

log = logging.getLogger("redstep.api.sns.delivery")

BLOCK_MS = 1000
BATCH = 100
IDLE_POLL_SECONDS = 0.5
RECLAIM_IDLE_MS = 300_000
"""An entry taken this long ago and not acknowledged belongs to a ``serve`` that died; far above
the longest HTTP delivery (HTTP_DELAYS and HTTP_TIMEOUT_SECONDS per attempt: about two minutes)."""
RECLAIM_EVERY_SECONDS = 30.0
HTTP_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0)
"""Waits before each retry of an HTTP delivery (SNS's default policy retries too, with back-off)."""
HTTP_TIMEOUT_SECONDS = 15.0
HTTP_WORKERS = 8
USER_AGENT = "Amazon Simple Notification Service Agent"


class Delivery:
    """Follows the subscribed topics' logs and delivers each entry to their subscriptions."""

    def __init__(self, sns: Sns, queues: Queues) -> None:
        self.sns = sns
        self.queues = queues
        self.consumer = f"serve-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._http = ThreadPoolExecutor(max_workers=HTTP_WORKERS, thread_name_prefix="sns-http")
        self._followed: set[str] = set()
        self._last_reclaim = 0.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sns-delivery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reading; HTTP deliveries under way are left unacknowledged, for a later claim."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=BLOCK_MS / 1000 + 5)
        self._http.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.deliver_round()
            except redis.RedisError as error:
                log.warning("SNS delivery: Redis failed: %s; retrying", error)
                self._followed.clear()
                self._stopping.wait(1.0)
            except Exception:
                log.exception("SNS delivery failed; retrying")
                self._stopping.wait(1.0)

    def deliver_round(self) -> None:
        """Deliver what the subscribed topics' logs hold for this consumer (waiting up to BLOCK_MS)."""
        by_topic: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for subscription_id, record in self.sns.subscriptions().items():
            by_topic.setdefault(record["topic"], []).append((subscription_id, record))
        if not by_topic:
            self._stopping.wait(IDLE_POLL_SECONDS)
            return
        keys = self.sns.keys
        for topic in by_topic.keys() - self._followed:
            follow_for_delivery(self.sns.redis, self.sns.settings, topic)
            self._followed.add(topic)
        streams = {keys.topic_log(topic): topic for topic in by_topic}
        now = self._redis_seconds()
        if now - self._last_reclaim >= RECLAIM_EVERY_SECONDS:
            self._last_reclaim = now
            for stream, topic in streams.items():
                _, entries, *_ = self.sns.redis.xautoclaim(
                    stream, DELIVERY_GROUP, self.consumer, RECLAIM_IDLE_MS, "0-0", count=BATCH
                )
                self.deliver(stream, topic, entries, by_topic[topic])
        try:
            replies = self.sns.redis.xreadgroup(
                DELIVERY_GROUP, self.consumer, dict.fromkeys(streams, ">"), count=BATCH, block=BLOCK_MS
            )
        except redis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            self._followed.clear()  # a log was deleted: make its group again next round
            return
        for stream, entries in replies or []:
            name = stream.decode() if isinstance(stream, bytes) else stream
            self.deliver(name, streams[name], entries, by_topic[streams[name]])

    def deliver(
        self,
        stream: str,
        topic: str,
        entries: list[tuple[bytes | str, dict[bytes, bytes] | None]],
        subscriptions: list[tuple[str, dict[str, Any]]],
    ) -> None:
        """Deliver log entries to the subscriptions each is for; acknowledge each once all are done.

        The queue deliveries of all ``entries`` go in one round trip, then the entries with
        nothing more to wait for are acknowledged in one more; an entry with HTTP deliveries
        is acknowledged when the last of them ends.
        """
        outgoing: dict[str, list[OutgoingMessage]] = {}
        done: list[str] = []
        for entry_id, fields in entries:
            entry = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            envelope = decoded((fields or {}).get(b"message"))
            published_ms = int(entry.split("-")[0])
            targets = [(sid, sub) for sid, sub in subscriptions if sub["since"] <= published_ms]
            web = []
            for subscription_id, record in targets if envelope is not None else []:
                if record["protocol"] == "sqs":
                    queue = record["endpoint"].rsplit(":", 1)[-1]
                    outgoing.setdefault(queue, []).append(
                        self._queue_message(subscription_id, record, envelope)
                    )
                else:
                    web.append((subscription_id, record))
            if web:
                self._post_then_ack(stream, entry, web, envelope or {})
            else:
                done.append(entry)
        self._send(outgoing)
        self._ack(stream, *done)

    def _post_then_ack(
        self, stream: str, entry: str, web: list[tuple[str, dict[str, Any]]], envelope: dict[str, Any]
    ) -> None:
        remaining = [len(web)]
        interrupted = [False]
        lock = threading.Lock()

        def one_done(future: Future[bool]) -> None:
            # A delivery cut short by stop() leaves the entry pending, to be claimed after a restart.
            finished = not future.cancelled() and future.exception() is None and future.result()
            with lock:
                remaining[0] -= 1
                interrupted[0] = interrupted[0] or not finished
                last = remaining[0] == 0
            if last and not interrupted[0]:
                self._ack(stream, entry)

        for subscription_id, record in web:
            future = self._http.submit(self._to_url, subscription_id, record, envelope)
            future.add_done_callback(one_done)

    def _send(self, outgoing: dict[str, list[OutgoingMessage]]) -> None:
        for queue, messages in outgoing.items():
            if not self.queues.exists(queue):
                log.warning(
                    "SNS delivery: queue %r does not exist; %d message(s) dropped", queue, len(messages)
                )
                continue
            self.queues.send(queue, messages)

    def _ack(self, stream: str, *entries: str) -> None:
        if not entries:
            return
        try:
            self.sns.redis.xack(stream, DELIVERY_GROUP, *entries)
        except redis.RedisError as error:
            # Left pending: claimed and delivered again after RECLAIM_IDLE_MS (at least once).
            log.warning(
                "SNS delivery: could not acknowledge %d entries of %s: %s", len(entries), stream, error
            )

    def _queue_message(
        self, subscription_id: str, record: dict[str, Any], envelope: dict[str, Any]
    ) -> OutgoingMessage:
        raw = _raw(record)
        body = (
            envelope["Message"] if raw else json.dumps(self.notification(subscription_id, record, envelope))
        )
        attributes = _sqs_attributes(envelope.get("MessageAttributes") or {}) if raw else {}
        message_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{subscription_id}/{envelope['MessageId']}"))
        return OutgoingMessage(message_id, body, attributes)

    def _to_url(self, subscription_id: str, record: dict[str, Any], envelope: dict[str, Any]) -> bool:
        """POST the message, retrying; True once delivered or given up, False when stop() cut it short."""
        raw = _raw(record)
        body = (
            envelope["Message"] if raw else json.dumps(self.notification(subscription_id, record, envelope))
        )
        headers = {
            "Content-Type": "text/plain; charset=UTF-8",
            "User-Agent": USER_AGENT,
            "x-amz-sns-message-type": "Notification",
            "x-amz-sns-message-id": envelope["MessageId"],
            "x-amz-sns-topic-arn": self.sns.topic_arn(record["topic"]),
            "x-amz-sns-subscription-arn": self.sns.subscription_arn(record["topic"], subscription_id),
        }
        if raw:
            headers["x-amz-sns-rawdelivery"] = "true"
        for attempt, delay in enumerate((0.0, *HTTP_DELAYS)):
            if delay and self._stopping.wait(delay):
                return False
            request = urllib.request.Request(
                record["endpoint"], data=body.encode(), headers=headers, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as answer:
                    if 200 <= answer.status < 300:
                        return True
                    problem = f"HTTP {answer.status}"
            except urllib.error.HTTPError as error:
                problem = f"HTTP {error.code}"
            except (urllib.error.URLError, OSError) as error:
                problem = str(error)
            log.info("SNS delivery to %s, attempt %d: %s", record["endpoint"], attempt + 1, problem)
        log.warning(
            "SNS delivery of %s to %s failed after %d attempts; dropped",
            envelope["MessageId"],
            record["endpoint"],
            len(HTTP_DELAYS) + 1,
        )
        return True

    def notification(
        self, subscription_id: str, record: dict[str, Any], envelope: dict[str, Any]
    ) -> dict[str, Any]:
        """The JSON document SNS delivers to an SQS queue or an HTTP endpoint (not raw)."""
        subscription_arn = self.sns.subscription_arn(record["topic"], subscription_id)
        document: dict[str, Any] = {
            "Type": "Notification",
            "MessageId": envelope["MessageId"],
            "TopicArn": envelope.get("TopicArn") or self.sns.topic_arn(record["topic"]),
        }
        if envelope.get("Subject") is not None:
            document["Subject"] = envelope["Subject"]
        document.update(
            Message=envelope["Message"],
            Timestamp=envelope["Timestamp"],
            SignatureVersion="1",
            # redstep holds no SNS signing certificate: the signature is a digest, not verifiable.
            Signature=base64.b64encode(hashlib.sha256(json.dumps(envelope).encode()).digest()).decode(),
            SigningCertURL=f"https://sns.{self.sns.region}.amazonaws.com/SimpleNotificationService-redstep.pem",
            UnsubscribeURL=(
                f"https://sns.{self.sns.region}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn="
                f"{quote(subscription_arn, safe=':')}"
            ),
        )
        if envelope.get("MessageAttributes"):
            document["MessageAttributes"] = envelope["MessageAttributes"]
        return document

    def _redis_seconds(self) -> float:
        seconds, microseconds = self.sns.redis.time()
        return float(seconds) + microseconds / 1e6


def _raw(record: dict[str, Any]) -> bool:
    return str(record.get("attributes", {}).get("RawMessageDelivery", "false")).lower() == "true"


def _sqs_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """SNS's delivered attributes (``Type``/``Value``) as SQS message attributes."""
    converted: dict[str, Any] = {}
    for name, attribute in attributes.items():
        if not isinstance(attribute, dict):
            continue
        data_type = str(attribute.get("Type", "String"))
        value_field = "BinaryValue" if data_type.startswith("Binary") else "StringValue"
        converted[name] = {"DataType": data_type, value_field: attribute.get("Value")}
    return converted
