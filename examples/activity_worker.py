"""A Step Functions activity worker, written for AWS and nothing else: boto3 only.

It polls an activity for tasks (GetActivityTask), does the work, and answers with the task
token (SendTaskSuccess, or SendTaskFailure when the work raises). Nothing here knows about
redstep: point it at redstep with the standard AWS settings and it runs unchanged::

    export AWS_ENDPOINT_URL=http://127.0.0.1:8083
    export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... AWS_DEFAULT_REGION=us-east-1
    python examples/activity_worker.py arn:aws:states:us-east-1:000000000000:activity:greeter

The work is a greeting: ``{"name": "Ada"}`` becomes ``{"greeting": "Hello, Ada!"}``; an
input without a name fails the task with the error ``MissingName``, which the state
machine's Retry and Catch see as they would on AWS.
"""

from __future__ import annotations

import argparse
import json
import socket
from typing import Any

import boto3
from botocore.config import Config

# AWS holds a GetActivityTask open for up to 60 s and asks clients to wait at least 65.
POLL_READ_TIMEOUT_SECONDS = 70


class MissingName(Exception):
    """The task's input names nobody to greet."""


def greet(task_input: dict[str, Any]) -> dict[str, Any]:
    """The work itself: any function of the task's input to the task's output."""
    name = task_input.get("name") if isinstance(task_input, dict) else None
    if not name:
        raise MissingName(f"the input {json.dumps(task_input)} has no 'name'")
    return {"greeting": f"Hello, {name}!"}


def run(activity_arn: str, worker_name: str, max_tasks: int | None) -> int:
    """Poll ``activity_arn`` and answer each task; returns how many tasks were answered."""
    client = boto3.client("stepfunctions", config=Config(read_timeout=POLL_READ_TIMEOUT_SECONDS))
    answered = 0
    while max_tasks is None or answered < max_tasks:
        task = client.get_activity_task(activityArn=activity_arn, workerName=worker_name)
        token = task.get("taskToken")
        if not token:
            continue  # the long poll ended without a task: poll again
        try:
            output = greet(json.loads(task["input"]))
        except Exception as error:  # any failure of the work is the task's failure, not the worker's
            client.send_task_failure(taskToken=token, error=type(error).__name__, cause=str(error)[:32768])
        else:
            client.send_task_success(taskToken=token, output=json.dumps(output))
        answered += 1
    return answered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("activity_arn", help="the activity to work for")
    parser.add_argument("--worker-name", default=socket.gethostname(), help="shown in the execution history")
    parser.add_argument("--max-tasks", type=int, default=None, help="stop after this many tasks")
    args = parser.parse_args()
    answered = run(args.activity_arn, args.worker_name, args.max_tasks)
    print(f"answered {answered} task(s)", flush=True)


if __name__ == "__main__":
    main()
