"""The AWS service models the API speaks, vendored from botocore (see tests/api_model_subset.py).

Only the operations served and the shapes they reach are kept, without documentation; a
test compares the copy with the installed botocore's model, so it cannot drift unnoticed.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

STEPFUNCTIONS_OPERATIONS = (
    "CreateStateMachine",
    "DescribeStateMachine",
    "UpdateStateMachine",
    "DeleteStateMachine",
    "ListStateMachines",
    "ValidateStateMachineDefinition",
    "StartExecution",
    "DescribeExecution",
    "DescribeStateMachineForExecution",
    "StopExecution",
    "ListExecutions",
    "GetExecutionHistory",
    "RedriveExecution",
    "SendTaskSuccess",
    "SendTaskFailure",
    "SendTaskHeartbeat",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
    "TestState",
    "CreateActivity",
    "DescribeActivity",
    "ListActivities",
    "DeleteActivity",
    "GetActivityTask",
    "StartSyncExecution",
    "PublishStateMachineVersion",
    "ListStateMachineVersions",
    "DeleteStateMachineVersion",
    "CreateStateMachineAlias",
    "DescribeStateMachineAlias",
    "UpdateStateMachineAlias",
    "DeleteStateMachineAlias",
    "ListStateMachineAliases",
)

SQS_OPERATIONS = (
    "GetQueueUrl",
    "ListQueues",
    "GetQueueAttributes",
    "SendMessage",
    "SendMessageBatch",
    "CreateQueue",
    "DeleteQueue",
    "PurgeQueue",
    "ReceiveMessage",
    "DeleteMessage",
    "ChangeMessageVisibility",
    "DeleteMessageBatch",
    "ChangeMessageVisibilityBatch",
    "SetQueueAttributes",
    "ListDeadLetterSourceQueues",
)

SNS_OPERATIONS = (
    "CreateTopic",
    "ListTopics",
    "DeleteTopic",
    "GetTopicAttributes",
    "SetTopicAttributes",
    "Publish",
    "PublishBatch",
    "Subscribe",
    "Unsubscribe",
    "ListSubscriptions",
    "ListSubscriptionsByTopic",
)

OPERATIONS = {"stepfunctions": STEPFUNCTIONS_OPERATIONS, "sqs": SQS_OPERATIONS, "sns": SNS_OPERATIONS}
VENDORED = {service: str(Path(__file__).with_name(f"{service}.json")) for service in OPERATIONS}


@cache
def service_model(service: str) -> dict[str, Any]:
    """The vendored model of ``service``: metadata, operations (input/output/errors) and shapes."""
    return json.loads(Path(VENDORED[service]).read_text())
