"""A worker that stops in the middle of GetActivityTask's long poll takes no task with it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from orchestrator.runtime.activities import POLLER_CLIENT_NAME
from orchestrator.runtime.server import RedisServer
from tests.api_fixtures import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    ApiStack,
    eventually,
    finished,
    role_arn,
    running_stack,
    unique,
)

POLL = """
import boto3, sys
from botocore.config import Config
sfn = boto3.client("stepfunctions", config=Config(read_timeout=70, retries={"max_attempts": 1}))
print(sfn.get_activity_task(activityArn=sys.argv[1]), flush=True)
"""


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    """serve with AWS's 60-second long polls, and one orchestrator."""
    yield from running_stack(
        redis_server, tmp_path_factory.mktemp("disconnect"), orchestrator=True, worker=False
    )


def blocked_polls(connection: redis.Redis) -> int:
    """GetActivityTask's connections blocked in Redis right now."""
    clients = connection.client_list()
    return sum(1 for client in clients if client.get("name") == POLLER_CLIENT_NAME and "b" in client["flags"])


def test_a_poll_whose_worker_was_killed_is_dropped_and_the_next_task_goes_to_a_live_worker(
    stack: ApiStack,
) -> None:
    sfn: Any = stack.client()
    activity = sfn.create_activity(name=unique("worked"))["activityArn"]
    definition = json.dumps(
        {"StartAt": "W", "States": {"W": {"Type": "Task", "Resource": activity, "End": True}}}
    )
    machine = sfn.create_state_machine(name=unique("m"), definition=definition, roleArn=role_arn())
    connection = redis.Redis.from_url(stack.env["REDIS_URL"])
    env = {k: v for k, v in stack.env.items() if not k.startswith("REDSTEP_")}
    env.update(
        AWS_ENDPOINT_URL=stack.url,
        AWS_ACCESS_KEY_ID=ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY,
        AWS_DEFAULT_REGION=REGION,
    )
    worker = subprocess.Popen([sys.executable, "-c", POLL, activity], env=env, stdout=subprocess.PIPE)
    try:
        eventually(lambda: blocked_polls(connection) == 1, "the worker's poll to wait in Redis")
        worker.kill()  # stopped mid-poll: its HTTP connection closes
        worker.wait(timeout=30)
        eventually(lambda: blocked_polls(connection) == 0, "serve to drop the poll nobody reads", timeout=30)

        execution = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], input='{"n": 1}')
        task = sfn.get_activity_task(activityArn=activity)
        assert json.loads(task["input"]) == {"n": 1}
        sfn.send_task_success(taskToken=task["taskToken"], output='{"done": true}')
        assert finished(sfn, execution["executionArn"])["status"] == "SUCCEEDED"
    finally:
        worker.kill()
        worker.wait(timeout=30)
        connection.close()
