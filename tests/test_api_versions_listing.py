"""ListExecutions of one machine among many, through boto3: from the machine's own index, also
for executions stored before that index existed."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from orchestrator.runtime import execution_index
from orchestrator.runtime.keys import STATUSES, Keys
from tests.api_fixtures import (
    FINISH_SECONDS,
    ApiStack,
    pass_machine,
    role_arn,
    serve_only,
    unique,
    wait_machine,
)
from tests.chaos import wait_until

__all__ = ["serve_only"]


@pytest.fixture(scope="module")
def sfn(serve_only: ApiStack) -> Any:
    return serve_only.client()


def listed(sfn: Any, arn: str, **filters: Any) -> list[str]:
    pages = sfn.get_paginator("list_executions").paginate(
        stateMachineArn=arn, PaginationConfig={"PageSize": 2}, **filters
    )
    return [execution["name"] for page in pages for execution in page["executions"]]


def test_a_rare_machines_executions_are_listed_newest_first_by_status_also_from_before_its_index(
    serve_only: ApiStack, sfn: Any
) -> None:
    common = sfn.create_state_machine(name=unique("common"), definition=pass_machine(), roleArn=role_arn())
    rare = sfn.create_state_machine(name=unique("rare"), definition=pass_machine(), roleArn=role_arn())
    waiting = sfn.create_state_machine(name=unique("waits"), definition=wait_machine(), roleArn=role_arn())
    rare_arn, rare_name = rare["stateMachineArn"], rare["stateMachineArn"].rsplit(":", 1)[1]
    names = []
    for i in range(3):
        names.append(unique(f"rare{i}"))
        sfn.start_execution(stateMachineArn=rare_arn, name=names[-1])
        for _ in range(10):
            sfn.start_execution(stateMachineArn=common["stateMachineArn"])
    sfn.start_execution(stateMachineArn=waiting["stateMachineArn"], name=unique("waiting"))
    newest_first = names[::-1]
    assert listed(sfn, rare_arn) == newest_first
    assert listed(sfn, rare_arn, statusFilter="SUCCEEDED") == newest_first
    assert listed(sfn, rare_arn, statusFilter="RUNNING") == []

    # As if stored before the per-machine indexes: only the global index knows them.
    keys = Keys(serve_only.prefix)
    with redis.Redis.from_url(serve_only.env["REDIS_URL"]) as redis_client:
        redis_client.delete(execution_index.built_key(keys), execution_index.all_key(keys, rare_name))
        redis_client.delete(*(execution_index.status_key(keys, rare_name, status) for status in STATUSES))
        # The first reader starts taking them in and reads the global index meanwhile.
        assert listed(sfn, rare_arn) == newest_first
        wait_until(
            lambda: bool(redis_client.exists(execution_index.built_key(keys))),
            FINISH_SECONDS,
            "the per-machine indexes to be rebuilt",
        )
        assert redis_client.zcard(execution_index.all_key(keys, rare_name)) == 3
    assert listed(sfn, rare_arn, statusFilter="SUCCEEDED") == newest_first
    assert listed(sfn, waiting["stateMachineArn"], statusFilter="RUNNING") != []
