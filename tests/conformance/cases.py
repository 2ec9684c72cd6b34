"""The AWS-recorded conformance cases in ../shared/conformance, and the functions they call."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from orchestrator.asl.definition import StateMachine
from orchestrator.asl.errors import DefinitionError
from orchestrator.local import LocalRunner

CONFORMANCE = Path(__file__).resolve().parents[3] / "shared" / "conformance"
CASES = CONFORMANCE / "cases"
KNOWN_FAILURES = Path(__file__).resolve().parents[1] / "conformance_known_failures.txt"


class CustomException(Exception):
    """The exception the recorded ``raise_custom_exception`` function raises."""


def id_function(event: Any, context: Any) -> Any:
    return event


def raise_exception(event: Any, context: Any) -> Any:
    raise Exception("Some exception was raised.")


def raise_custom_exception(event: Any, context: Any) -> Any:
    raise CustomException()


def echo_function(event: Any, context: Any) -> Any:
    return {"Return": "HelloWorld"}


def return_bytes_str(event: Any, context: Any) -> Any:
    return "HelloWorld!"


def large_output_string(event: Any, context: Any) -> Any:
    return "a" * (257 * 1024)


def wait_60_seconds(event: Any, context: Any) -> Any:
    return event


wait_60_seconds.virtual_duration_seconds = 60  # type: ignore[attr-defined]

FUNCTIONS = {
    "id_function": id_function,
    "raise_exception": raise_exception,
    "raise_custom_exception": raise_custom_exception,
    "echo_function": echo_function,
    "echo_function_2": echo_function,
    "return_bytes_str": return_bytes_str,
    "large_output_string": large_output_string,
    "wait_60_seconds": wait_60_seconds,
}


def load_cases() -> list[dict[str, Any]]:
    """Every recorded case, sorted by category and id."""
    return [json.loads(path.read_text()) for path in sorted(CASES.glob("*/*.json"))]


def known_failures() -> dict[str, str]:
    """Case ids this engine does not pass yet, each with the reason."""
    failures: dict[str, str] = {}
    if KNOWN_FAILURES.exists():
        for line in KNOWN_FAILURES.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                case_id, _, reason = line.partition(" ")
                failures[case_id] = reason.strip()
    return failures


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    """Run one case through the local runner; the result line check.py scores."""
    try:
        machine = StateMachine.parse(case["definition"], name="ConformanceMachine")
    except DefinitionError as exc:
        return {"id": case["id"], "status": "INVALID_DEFINITION", "output": None, "error": None,
                "cause": str(exc), "history": []}  # fmt: skip
    result = LocalRunner(machine, FUNCTIONS).run(case["input"], start=time.time())
    history = [{"type": e["type"], **({"name": e["name"]} if "name" in e else {})} for e in result.history]
    return {
        "id": case["id"],
        "status": result.status,
        "output": result.output,
        "error": result.error,
        "cause": result.cause,
        "history": history,
    }
