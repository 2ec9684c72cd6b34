"""``redstep run`` (locally and on the stack) and ``redstep machines validate``, through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import stop_all

FUNCTIONS = """
def double(event, context):
    return {"value": event["value"] * 2}


def explode(event, context):
    raise ValueError("no dragons here")


def helper(value):
    return value
"""

DEFINITION = {
    "StartAt": "Double",
    "States": {
        "Double": {"Type": "Task", "Resource": "double", "Next": "Rest"},
        "Rest": {"Type": "Wait", "Seconds": 3600, "Next": "Big?"},
        "Big?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.value", "NumericGreaterThan": 10, "Next": "Explode"}],
            "Default": "Done",
        },
        "Explode": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:explode",
            "Retry": [{"ErrorEquals": ["ValueError"], "IntervalSeconds": 30, "MaxAttempts": 2}],
            "End": True,
        },
        "Done": {"Type": "Succeed"},
    },
}


def redstep(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "producer.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    functions = tmp_path / "functions.py"
    functions.write_text(FUNCTIONS)
    definition = tmp_path / "machine.asl.json"
    definition.write_text(json.dumps(DEFINITION))
    return {"functions": functions, "definition": definition}


def test_a_local_run_passes_an_hour_of_waiting_instantly_and_prints_the_output(
    files: dict[str, Path],
) -> None:
    # An hour of real waiting would overrun redstep()'s one-minute timeout and fail the test.
    done = redstep("run", str(files["definition"]), "--local", "--functions", str(files["functions"]),
                   "--input", '{"value": 4}', "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "SUCCEEDED"
    assert result["output"] == {"value": 8}
    assert result["executionArn"].startswith("arn:aws:states:")
    types = [event["type"] for event in result["history"]]
    assert types[0] == "ExecutionStarted" and types[-1] == "ExecutionSucceeded"
    assert "WaitStateExited" in types


def test_a_local_run_that_fails_exits_1_with_the_functions_error_after_its_retries(
    files: dict[str, Path],
) -> None:
    done = redstep("run", str(files["definition"]), "--local", "--functions", str(files["functions"]),
                   "--input", '{"value": 6}', "--json")  # fmt: skip
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["status"] == "FAILED"
    assert result["error"] == "ValueError"
    assert json.loads(result["cause"])["errorMessage"] == "no dragons here"
    scheduled = [e for e in result["history"] if e["type"] == "LambdaFunctionScheduled"]
    assert len(scheduled) == 1 + 1 + 2  # double, then explode and its two retries


def test_a_task_naming_an_unregistered_function_fails_clearly(files: dict[str, Path]) -> None:
    done = redstep("run", str(files["definition"]), "--local", "--input", '{"value": 4}')
    assert done.returncode == 1
    assert "Lambda.ResourceNotFoundException" in done.stdout
    assert "double" in done.stdout


def test_an_input_or_a_definition_holding_what_json_has_not_is_refused_before_anything_runs(
    files: dict[str, Path], tmp_path: Path
) -> None:
    # Python's json reads NaN, the infinities and 1e400 (as an infinite float); JSON has none.
    for text, named in [('{"value": NaN}', "NaN"), ('{"value": 1e400}', "1e400"), ("-Infinity", "-Infinity")]:
        done = redstep("run", str(files["definition"]), "--local", "--input", text)
        assert done.returncode == 2, done.stdout
        assert "--input is not valid JSON" in done.stderr and named in done.stderr, done.stderr
    odd = tmp_path / "nan.asl.json"
    odd.write_text('{"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": NaN, "End": true}}}')
    done = redstep("machines", "validate", str(odd))
    assert done.returncode != 0 and "NaN is not a JSON value" in done.stdout + done.stderr


def test_machines_validate_names_every_problem_and_exits_1(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(
        json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "C": {"Type": "Nope"}}})
    )
    done = redstep("machines", "validate", str(broken))
    assert done.returncode == 1
    assert "/States/A/Next" in done.stdout and "/States/C/Type" in done.stdout


def test_machines_validate_accepts_the_shipped_dragon_pipeline() -> None:
    shipped = (
        Path(__file__).resolve().parents[1] / "orchestrator" / "state_machines" / "dragon_pipeline.asl.json"
    )
    done = redstep("machines", "validate", str(shipped), "--json")
    assert done.returncode == 0, done.stdout
    assert json.loads(done.stdout) == {"valid": True, "problems": []}


def test_an_invalid_definition_never_runs(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"StartAt": "Missing", "States": {"A": {"Type": "Succeed"}}}))
    done = redstep("run", str(broken), "--local")
    assert done.returncode == 1
    assert "/StartAt" in done.stderr


@pytest.fixture
def stack(subprocess_env: dict[str, str], files: dict[str, Path]) -> Iterator[dict[str, str]]:
    """An orchestrator and a worker process on the test Redis; the worker knows the test functions."""
    quiet = {"env": subprocess_env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    commands = [
        [sys.executable, "-m", "producer.cli", "orchestrator"],
        [sys.executable, "-m", "worker", "--functions", str(files["functions"])],
    ]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes += [subprocess.Popen(command, **quiet) for command in commands]
        yield subprocess_env
    finally:
        stop_all(processes)


def test_a_run_on_the_stack_gives_the_same_result_as_a_local_run(
    files: dict[str, Path], stack: dict[str, str]
) -> None:
    definition = {
        "StartAt": "Double",
        "States": {"Double": {"Type": "Task", "Resource": "double", "End": True}},
    }
    path = files["definition"].with_name("double.asl.json")
    path.write_text(json.dumps(definition))
    on_stack = redstep("run", str(path), "--input", '{"value": 21}', "--json", env=stack)
    local = redstep(
        "run",
        str(path),
        "--local",
        "--functions",
        str(files["functions"]),
        "--input",
        '{"value": 21}',
        "--json",
    )
    assert on_stack.returncode == 0, on_stack.stderr
    stack_result, local_result = json.loads(on_stack.stdout), json.loads(local.stdout)
    assert stack_result["output"] == local_result["output"] == {"value": 42}
    pairs = [[(e["type"], e.get("name")) for e in r["history"]] for r in (stack_result, local_result)]
    assert pairs[0] == pairs[1]


def test_a_local_run_starts_the_nested_machines_it_is_given(tmp_path: Path) -> None:
    child = {
        "StartAt": "Greet",
        "States": {"Greet": {"Type": "Pass", "Parameters": {"hi.$": "$.who"}, "End": True}},
    }
    start = {
        "Type": "Task",
        "Resource": "arn:aws:states:::states:startExecution.sync:2",
        "Parameters": {
            "StateMachineArn": "arn:aws:states:us-east-1:000000000000:stateMachine:Child",
            "Input.$": "$",
        },
        "OutputPath": "$.Output",
        "End": True,
    }
    (tmp_path / "child.asl.json").write_text(json.dumps(child))
    (tmp_path / "parent.asl.json").write_text(json.dumps({"StartAt": "Start", "States": {"Start": start}}))

    done = redstep("run", str(tmp_path / "parent.asl.json"), "--local", "--machine",
                   f"Child={tmp_path / 'child.asl.json'}", "--input", '{"who": "you"}', "--json")  # fmt: skip
    missing = redstep("run", str(tmp_path / "parent.asl.json"), "--local", "--json")
    malformed = redstep("run", str(tmp_path / "parent.asl.json"), "--local", "--machine", "Child")

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output"] == {"hi": "you"}
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["error"] == "StepFunctions.StateMachineDoesNotExistException"
    assert malformed.returncode == 2 and "give NAME=FILE" in malformed.stderr
