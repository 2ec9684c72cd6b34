"""TestState's time limit: a function that runs longer answers States.Timeout, as AWS's TestState does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.config import Config

from orchestrator.runtime.server import RedisServer
from tests.api_fixtures import ApiStack, role_arn, running_stack


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    """serve with AWS's five-minute limit shortened to two seconds, one orchestrator and one worker."""
    logs = tmp_path_factory.mktemp("test-state-limit")
    limit = {"REDSTEP_SYNC_EXECUTION_LIMIT_SECONDS": "2"}
    yield from running_stack(redis_server, logs, orchestrator=True, worker=True, settings=limit)


def test_a_function_that_outlives_the_limit_answers_states_timeout(stack: ApiStack) -> None:
    sfn: Any = stack.client(config=Config(inject_host_prefix=False, retries={"max_attempts": 1}))
    state = {"Type": "Task", "Resource": "sleep_and_report", "End": True}

    answer = sfn.test_state(definition=json.dumps(state), roleArn=role_arn(), input='{"seconds": 6}')

    assert (answer["status"], answer["error"]) == ("FAILED", "States.Timeout"), stack.log_text()
    assert "limit of 2 seconds" in answer["cause"]
    assert "output" not in answer and "nextState" not in answer
