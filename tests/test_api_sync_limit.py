"""StartSyncExecution's time limit: an execution that outlives it is stopped and answered TIMED_OUT."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.config import Config

from orchestrator.runtime.server import RedisServer
from tests.api_fixtures import ApiStack, finished, role_arn, running_stack, unique, wait_machine


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    """serve, with AWS's five-minute limit shortened to two seconds, and one orchestrator."""
    settings = {"REDSTEP_SYNC_EXECUTION_LIMIT_SECONDS": "2"}
    logs = tmp_path_factory.mktemp("sync-limit")
    yield from running_stack(redis_server, logs, orchestrator=True, worker=False, settings=settings)


def test_a_sync_execution_that_outlives_the_limit_is_stopped_and_answered_timed_out(stack: ApiStack) -> None:
    sfn: Any = stack.client(config=Config(inject_host_prefix=False, retries={"max_attempts": 1}))
    arn = sfn.create_state_machine(
        name=unique("slow"), definition=wait_machine(300), roleArn=role_arn(), type="EXPRESS"
    )["stateMachineArn"]

    answer = sfn.start_sync_execution(stateMachineArn=arn, input=json.dumps({"n": 1}))

    assert (answer["status"], answer["error"]) == ("TIMED_OUT", "States.Timeout")
    assert "output" not in answer
    assert finished(sfn, answer["executionArn"])["status"] == "ABORTED"  # it runs no longer
