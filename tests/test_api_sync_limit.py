"""StartSyncExecution's time limit: an execution that outlives it is stopped and answered TIMED_OUT."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.config import Config

from orchestrator.runtime.server import RedisServer
from tests.api_fixtures import ApiStack, api_env, finished, role_arn, serve, start, unique, wait_machine
from tests.chaos import stop


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    """serve, with AWS's five-minute limit shortened to two seconds, and one orchestrator."""
    logs = tmp_path_factory.mktemp("sync-limit")
    prefix = f"lim{uuid.uuid4().hex[:8]}"
    env = {**api_env(redis_server.url, prefix), "REDSTEP_SYNC_EXECUTION_LIMIT_SECONDS": "2"}
    orchestrator = start(env, logs / "orchestrator.log", "orchestrator")
    try:
        process, url = serve(env, logs)
        try:
            yield ApiStack(url, env, prefix, logs)
        finally:
            stop(process)
    finally:
        stop(orchestrator)


def test_a_sync_execution_that_outlives_the_limit_is_stopped_and_answered_timed_out(stack: ApiStack) -> None:
    sfn: Any = stack.client(config=Config(inject_host_prefix=False, retries={"max_attempts": 1}))
    arn = sfn.create_state_machine(
        name=unique("slow"), definition=wait_machine(300), roleArn=role_arn(), type="EXPRESS"
    )["stateMachineArn"]

    answer = sfn.start_sync_execution(stateMachineArn=arn, input=json.dumps({"n": 1}))

    assert (answer["status"], answer["error"]) == ("TIMED_OUT", "States.Timeout")
    assert "output" not in answer
    assert finished(sfn, answer["executionArn"])["status"] == "ABORTED"  # it runs no longer
