"""The SQS actions served, by name (the part of ``X-Amz-Target`` after ``AmazonSQS.``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from orchestrator.api.sqs import messages, queues, receiving
from orchestrator.api.sqs.context import Sqs

# ReceiveMessage is a coroutine (its long poll waits in the event loop); the rest run in threads.
Action = Callable[[Sqs, dict[str, Any], str], dict[str, Any] | Awaitable[dict[str, Any]]]

ACTIONS: dict[str, Action] = {
    "GetQueueUrl": queues.get_queue_url,
    "ListQueues": queues.list_queues,
    "GetQueueAttributes": queues.get_queue_attributes,
    "SendMessage": messages.send_message,
    "SendMessageBatch": messages.send_message_batch,
    "CreateQueue": queues.create_queue,
    "DeleteQueue": queues.delete_queue,
    "PurgeQueue": queues.purge_queue,
    "ReceiveMessage": receiving.receive_message,
    "DeleteMessage": receiving.delete_message,
    "ChangeMessageVisibility": receiving.change_message_visibility,
    "DeleteMessageBatch": receiving.delete_message_batch,
    "ChangeMessageVisibilityBatch": receiving.change_message_visibility_batch,
    "SetQueueAttributes": queues.set_queue_attributes,
    "ListDeadLetterSourceQueues": queues.list_dead_letter_source_queues,
}

__all__ = ["ACTIONS", "Action", "Sqs"]
