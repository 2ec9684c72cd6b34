"""StartSyncExecution and EXPRESS state machines through boto3 and the real AWS CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from botocore.config import Config

from tests.api_fixtures import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    ApiStack,
    api_stack,
    pass_machine,
    role_arn,
    unique,
)

__all__ = ["api_stack"]  # fixtures, used by name


@pytest.fixture(scope="module")
def sync_sfn(api_stack: ApiStack) -> Any:
    """A client that keeps botocore's ``sync-`` host prefix off (the endpoint is an IP address)."""
    return api_stack.client(config=Config(inject_host_prefix=False, retries={"max_attempts": 1}))


def express(sfn: Any, definition: str) -> str:
    created = sfn.create_state_machine(
        name=unique("express"), definition=definition, roleArn=role_arn(), type="EXPRESS"
    )
    return str(created["stateMachineArn"])


def lambda_machine(function: str) -> str:
    task = {
        "Type": "Task",
        "Resource": f"arn:aws:lambda:{REGION}:000000000000:function:{function}",
        "End": True,
    }
    return json.dumps({"StartAt": "Call", "States": {"Call": task}})


def test_an_express_machine_is_kept_as_express_and_described_so(sync_sfn: Any) -> None:
    arn = express(sync_sfn, pass_machine())
    assert sync_sfn.describe_state_machine(stateMachineArn=arn)["type"] == "EXPRESS"
    listed = sync_sfn.list_state_machines()["stateMachines"]
    assert {"stateMachineArn": arn, "type": "EXPRESS"}.items() <= next(
        item for item in listed if item["stateMachineArn"] == arn
    ).items()


def test_start_sync_execution_answers_with_the_output_once_a_worker_ran_the_task(sync_sfn: Any) -> None:
    arn = express(sync_sfn, lambda_machine("sleep_and_report"))
    given = {"seconds": 0.1, "hello": "world"}
    answer = sync_sfn.start_sync_execution(stateMachineArn=arn, input=json.dumps(given), name=unique("sync"))

    assert answer["status"] == "SUCCEEDED", answer
    assert json.loads(answer["output"])["event"] == given
    assert json.loads(answer["input"]) == given
    assert answer["stopDate"] >= answer["startDate"]
    assert answer["billingDetails"]["billedDurationInMilliseconds"] >= 100
    assert answer["billingDetails"]["billedMemoryUsedInMB"] == 64
    history = sync_sfn.get_execution_history(executionArn=answer["executionArn"])["events"]
    assert history[-1]["type"] == "ExecutionSucceeded"


def test_a_failing_sync_execution_answers_failed_with_its_error_and_cause(sync_sfn: Any) -> None:
    fail = json.dumps(
        {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Nope", "Cause": "because"}}}
    )
    answer = sync_sfn.start_sync_execution(
        stateMachineArn=express(sync_sfn, fail), includedData="METADATA_ONLY"
    )
    assert (answer["status"], answer["error"], answer["cause"]) == ("FAILED", "Nope", "because")
    assert "input" not in answer and "output" not in answer


def test_start_sync_execution_of_a_standard_machine_is_refused_as_aws_refuses_it(sync_sfn: Any) -> None:
    standard = sync_sfn.create_state_machine(
        name=unique("std"), definition=pass_machine(), roleArn=role_arn()
    )
    with pytest.raises(sync_sfn.exceptions.StateMachineTypeNotSupported):
        sync_sfn.start_sync_execution(stateMachineArn=standard["stateMachineArn"])
    with pytest.raises(sync_sfn.exceptions.InvalidExecutionInput):
        sync_sfn.start_sync_execution(stateMachineArn=express(sync_sfn, pass_machine()), input="{nope")


def test_the_aws_cli_runs_start_sync_execution_and_reads_the_history(
    api_stack: ApiStack, sync_sfn: Any
) -> None:
    arn = express(sync_sfn, pass_machine({"from": "cli"}))
    env = {
        **{k: v for k, v in api_stack.env.items() if not k.startswith("REDSTEP_")},
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
    }

    def aws(*args: str) -> Any:
        command = [sys.executable, "-m", "awscli", "stepfunctions", *args]
        command += ["--endpoint-url", api_stack.url, "--output", "json"]
        ran = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert ran.returncode == 0, ran.stderr
        return json.loads(ran.stdout)

    answer = aws("start-sync-execution", "--state-machine-arn", arn, "--input", '{"a": 1}')
    assert (answer["status"], json.loads(answer["output"])) == ("SUCCEEDED", {"from": "cli"})
    events = aws("get-execution-history", "--execution-arn", answer["executionArn"], "--reverse-order")[
        "events"
    ]
    assert events[0]["type"] == "ExecutionSucceeded"


def test_start_sync_execution_of_a_version_or_an_alias_runs_that_version(sync_sfn: Any) -> None:
    created = sync_sfn.create_state_machine(
        name=unique("versioned"),
        definition=pass_machine({"version": 1}),
        roleArn=role_arn(),
        type="EXPRESS",
        publish=True,
    )
    arn, first = created["stateMachineArn"], created["stateMachineVersionArn"]
    sync_sfn.update_state_machine(stateMachineArn=arn, definition=pass_machine({"version": 2}), publish=True)
    alias = sync_sfn.create_state_machine_alias(
        name="stable", routingConfiguration=[{"stateMachineVersionArn": first, "weight": 100}]
    )["stateMachineAliasArn"]

    current = sync_sfn.start_sync_execution(stateMachineArn=arn)
    through_version = sync_sfn.start_sync_execution(stateMachineArn=first)
    through_alias = sync_sfn.start_sync_execution(stateMachineArn=alias)

    assert json.loads(current["output"]) == {"version": 2}
    assert json.loads(through_version["output"]) == {"version": 1}
    assert json.loads(through_alias["output"]) == {"version": 1}
    assert through_alias["stateMachineArn"] == arn
    described = sync_sfn.describe_execution(executionArn=through_alias["executionArn"])
    assert (described["stateMachineVersionArn"], described["stateMachineAliasArn"]) == (first, alias)
    listed = sync_sfn.list_executions(stateMachineArn=first)["executions"]
    assert {item["executionArn"] for item in listed} == {
        through_version["executionArn"],
        through_alias["executionArn"],
    }
    with pytest.raises(sync_sfn.exceptions.StateMachineDoesNotExist):
        sync_sfn.start_sync_execution(stateMachineArn=f"{arn}:99")
