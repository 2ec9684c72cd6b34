"""A definition run in the local runner, and what a test reads of the run.

For tests that build a machine out of a few states and check how its execution ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.asl.definition import StateMachine
from orchestrator.local import LocalResult, LocalRunner


def run(
    states: dict[str, Any],
    input: Any,
    functions: dict[str, Callable[..., Any]] | None = None,
    *,
    start: str = "S",
    machine: str = "Local",
) -> LocalResult:
    """Run the machine of ``states`` (starting at ``start``) on ``input``, its clock at 0."""
    definition = {"StartAt": start, "States": states}
    return LocalRunner(StateMachine.parse(definition, machine), functions or {}).run(input, start=0.0)


def outcome(result: LocalResult) -> tuple[str, str | None, str | None]:
    """The execution's status, error and cause."""
    return result.status, result.error, result.cause


def types(result: LocalResult) -> list[str]:
    """The types of the execution's history events, in order."""
    return [event["type"] for event in result.history]
