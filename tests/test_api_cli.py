"""The real AWS CLI, and the dragon pipeline driven end to end through boto3 alone."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.api_fixtures import (
    ACCESS_KEY_ID,
    ACCOUNT,
    REGION,
    SECRET_ACCESS_KEY,
    ApiStack,
    api_stack,
    finished,
    sfn,
    unique,
)
from tests.runtime_fixtures import dragon

__all__ = ["api_stack", "sfn"]  # fixtures, used by name

DRAGON_PIPELINE = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:DragonPipeline"


def aws(stack: ApiStack, *args: str) -> Any:
    """``aws stepfunctions ARGS --endpoint-url ...`` (the awscli package), its JSON answer."""
    env = {
        **{k: v for k, v in stack.env.items() if not k.startswith("REDSTEP_")},
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "awscli",
            "stepfunctions",
            *args,
            "--endpoint-url",
            stack.url,
            "--output",
            "json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    return json.loads(ran.stdout) if ran.stdout.strip() else None


def test_the_aws_cli_lists_machines_starts_an_execution_and_reads_its_history(
    api_stack: ApiStack, sfn: Any
) -> None:
    listed = aws(api_stack, "list-state-machines")
    assert DRAGON_PIPELINE in [machine["stateMachineArn"] for machine in listed["stateMachines"]]

    record = dragon(unique("cli"))
    started = aws(
        api_stack,
        "start-execution",
        "--state-machine-arn",
        DRAGON_PIPELINE,
        "--name",
        unique("cli-run"),
        "--input",
        json.dumps(record),
    )
    assert finished(sfn, started["executionArn"])["status"] == "SUCCEEDED"

    history = aws(
        api_stack, "get-execution-history", "--execution-arn", started["executionArn"], "--reverse-order"
    )
    types = [event["type"] for event in history["events"]]
    assert types[0] == "ExecutionSucceeded" and types[-1] == "ExecutionStarted"


def test_the_dragon_pipeline_runs_end_to_end_through_boto3(sfn: Any) -> None:
    record = dragon(unique("Smaug"))
    first = sfn.start_execution(
        stateMachineArn=DRAGON_PIPELINE, name=unique("first"), input=json.dumps(record)
    )
    inserted = finished(sfn, first["executionArn"])
    again = sfn.start_execution(
        stateMachineArn=DRAGON_PIPELINE, name=unique("again"), input=json.dumps(record)
    )
    repeated = finished(sfn, again["executionArn"])

    assert (inserted["status"], repeated["status"]) == ("SUCCEEDED", "SUCCEEDED")
    history = sfn.get_execution_history(executionArn=first["executionArn"], maxResults=1000)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in history if e["type"] == "TaskStateEntered"]
    assert entered == ["ValidateDragon", "AddDragon", "NotifyInserted"]
    notified = next(e for e in history if e["type"] == "TaskScheduled")["taskScheduledEventDetails"]
    assert json.loads(notified["parameters"])["Subject"] == "Record inserted"
    history_again = sfn.get_execution_history(executionArn=again["executionArn"], maxResults=1000)["events"]
    entered_again = [
        e["stateEnteredEventDetails"]["name"] for e in history_again if e["type"] == "TaskStateEntered"
    ]
    assert entered_again == ["ValidateDragon", "NotifyExists"]
    listed = sfn.list_executions(stateMachineArn=DRAGON_PIPELINE, maxResults=1000)["executions"]
    assert {first["executionArn"], again["executionArn"]} <= {e["executionArn"] for e in listed}
