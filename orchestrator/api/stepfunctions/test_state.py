"""TestState: run one state on a given input and answer how it went, as AWS does.

The state (given alone, or named by ``stateName`` in a whole definition) runs as the only
real state of a small machine the public core parses and the local runner drives on its
virtual clock: every name it can go to (``Next``, ``Default``, a Choice rule's or a Catch's
``Next``) becomes a Succeed stub of its own, so where the state went is the stub entered,
and what it output is what the stub received. A Wait state therefore answers at once. As on
AWS, the state runs once: an error a retrier would retry answers RETRIABLE (the Retry is
judged, not run), and one a Catch takes answers CAUGHT_ERROR with the Catch's next state.

Task states: the service integrations redstep carries out itself (``sns:publish``,
``sqs:sendMessage``) really publish and send, as AWS's TestState really invokes the resource.
A state that runs a function (a Lambda ARN, ``lambda:invoke`` or a bare name, alone or inside
a Parallel or Map) really runs it: the same small machine runs as an execution on the
orchestrators and workers (test_state_workers). Activity and callback (``.waitForTaskToken``)
Tasks are refused, as AWS refuses them without a mock; so are ``mock``, ``context``,
``variables`` and ``stateConfiguration``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.concurrency import run_in_threadpool

from orchestrator.api.errors import ApiError, validation_error
from orchestrator.api.stepfunctions.context import StepFunctions
from orchestrator.api.stepfunctions.machines import invalid_definition
from orchestrator.api.stepfunctions.test_state_workers import run_on_workers, with_missing_said
from orchestrator.asl.definition import StateMachine
from orchestrator.asl.errors import NOT_MATCHED_BY_ALL, DefinitionError
from orchestrator.asl.resources import parse_resource
from orchestrator.local import LocalRunner
from orchestrator.protocol.decoding import strict_loads
from orchestrator.runtime.notifications import publish
from orchestrator.runtime.queues import OutgoingMessage, Queues
from orchestrator.runtime.targets import ServiceTargets
from orchestrator.services import message_text

TESTED = "TestState"
SERVICE_RESOURCES = ("arn:aws:states:::sns:publish", "arn:aws:states:::sqs:sendMessage")
UNSUPPORTED_MEMBERS = ("mock", "context", "variables", "stateConfiguration")


async def test_state(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    for member in UNSUPPORTED_MEMBERS:
        if request.get(member) is not None:
            raise validation_error(f"TestState: {member} is not supported by redstep")
    state, name, language = _the_state(request["definition"], request.get("stateName"))
    runs_functions = _runs_functions(state)
    given = _input(request.get("input"))
    tested, exits = _with_stub_exits(state)
    # AWS answers RETRIABLE instead of retrying: the state runs once, its retriers judged after.
    retriers = tested.pop("Retry", None)
    wrapper: dict[str, Any] = {
        "StartAt": name,
        "States": {name: tested, **{stub: {"Type": "Succeed"} for stub in exits}},
    }
    if language:
        wrapper["QueryLanguage"] = language
    try:
        machine = StateMachine.parse(wrapper, TESTED)
    except DefinitionError as error:
        raise invalid_definition(error.problems) from None
    judged = retriers if isinstance(retriers, list) else []
    if runs_functions:
        ran = await run_on_workers(sfn, wrapper, given)
        await run_in_threadpool(_carry_out, sfn, ran.effects)
        return with_missing_said(_answer(request, given, ran, exits, judged), ran)
    # As the state would run in an execution: a queue or topic that does not exist fails it.
    targets = ServiceTargets(sfn.client.redis, sfn.client.settings, remember_seconds=0)
    result = await run_in_threadpool(LocalRunner(machine, targets=targets).run, given)
    await run_in_threadpool(_carry_out, sfn, result.effects)
    return _answer(request, given, result, exits, judged)


def _the_state(text: str, state_name: str | None) -> tuple[dict[str, Any], str, str | None]:
    """The state to test, its name, and the query language its machine declares."""
    try:
        definition = json.loads(text)
    except ValueError as error:
        raise ApiError("InvalidDefinition", f"Invalid State Machine Definition: not JSON: {error}") from None
    if not isinstance(definition, dict):
        raise ApiError("InvalidDefinition", "Invalid State Machine Definition: a state is a JSON object")
    if "States" not in definition:
        return definition, state_name or TESTED, None
    states = definition.get("States")
    chosen = state_name or definition.get("StartAt")
    if (
        not isinstance(states, dict)
        or not isinstance(chosen, str)
        or not isinstance(states.get(chosen), dict)
    ):
        raise validation_error(f"TestState: the definition has no state named {chosen!r} (stateName)")
    language = definition.get("QueryLanguage")
    return states[chosen], chosen, language if isinstance(language, str) else None


def _runs_functions(state: Any) -> bool:
    """Whether the state (or one in its branches or item processor) is a Task that runs a function.

    Raises:
        ApiError: ValidationException for an activity or callback Task, which AWS's TestState
            runs only with a mock, and for a service redstep does not carry out.
    """
    if isinstance(state, list):
        return any([_runs_functions(item) for item in state])  # a list, so every Task is checked
    if not isinstance(state, dict):
        return False
    found = False
    if state.get("Type") == "Task" and isinstance(state.get("Resource"), str):
        found = _is_function(state["Resource"])
    nested = [_runs_functions(value) for value in state.values() if isinstance(value, dict | list)]
    return found or any(nested)


def _is_function(resource: str) -> bool:
    try:
        parsed = parse_resource(resource)
    except ValueError:
        return False  # the validator names what is wrong with it
    if parsed.callback:
        raise validation_error(
            f"TestState: the Task resource {resource[:200]!r} waits for a callback (or is an activity):"
            " TestState runs such Tasks only with a mock, which redstep does not support;"
            " test it with a StartExecution"
        )
    if parsed.kind in ("lambda", "invoke"):
        return True
    if resource not in SERVICE_RESOURCES:
        raise validation_error(
            f"TestState: the Task resource {resource[:200]!r} is not supported by redstep: TestState runs"
            f" functions and {', '.join(SERVICE_RESOURCES)}"
        )
    return False


def _input(text: str | None) -> Any:
    if text is None:
        return {}
    try:
        return strict_loads(text)
    except ValueError as error:
        raise ApiError("InvalidExecutionInput", f"Invalid State Machine Execution Input: {error}") from None


def _with_stub_exits(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, tuple[str, int | None]]]:
    """The state with every exit renamed to a stub; each stub's real name and, for a Catch's, its index."""
    exits: dict[str, tuple[str, int | None]] = {}

    def stub(target: Any, caught: int | None) -> Any:
        if not isinstance(target, str):
            return target  # the validator names what is wrong with it
        name = f"__redstep_exit_{uuid.uuid4().hex}"
        exits[name] = (target, caught)
        return name

    tested = json.loads(json.dumps(state))
    if "Next" in tested:
        tested["Next"] = stub(tested["Next"], None)
    if "Default" in tested:
        tested["Default"] = stub(tested["Default"], None)
    for rule in tested.get("Choices", []) if isinstance(tested.get("Choices"), list) else []:
        if isinstance(rule, dict) and "Next" in rule:
            rule["Next"] = stub(rule["Next"], None)
    catchers = tested.get("Catch") if isinstance(tested.get("Catch"), list) else []
    for index, catcher in enumerate(catchers):
        if isinstance(catcher, dict) and "Next" in catcher:
            catcher["Next"] = stub(catcher["Next"], index)
    return tested, exits


def _answer(
    request: dict[str, Any],
    given: Any,
    result: Any,
    exits: dict[str, tuple[str, int | None]],
    retriers: list[Any],
) -> dict[str, Any]:
    # The history as the core records it: flat events with a type and the state's name.
    entered = [event.get("name") for event in result.history if str(event["type"]).endswith("StateEntered")]
    exit_taken = next((state for state in entered if state in exits), None)
    answer: dict[str, Any] = {}
    details: dict[str, Any] = {}
    if result.status == "SUCCEEDED":
        answer["output"] = json.dumps(result.output, separators=(",", ":"))
        answer["status"] = "SUCCEEDED"
        if exit_taken is not None:
            answer["nextState"], catch_index = exits[exit_taken]
            if catch_index is not None:
                answer["status"] = "CAUGHT_ERROR"
                answer["error"], answer["cause"] = _caught_error(result.history, result.output)
                details["catchIndex"] = catch_index
    else:
        answer.update(status="FAILED", error=result.error or "States.Runtime", cause=result.cause or "")
    if "error" in answer and (retry := _matching_retrier(retriers, answer["error"])) is not None:
        index, interval = retry
        answer = {"status": "RETRIABLE", "error": answer["error"], "cause": answer["cause"]}
        details = {"retryIndex": index, "retryBackoffIntervalSeconds": interval}
    if request.get("inspectionLevel") in ("DEBUG", "TRACE"):
        data: dict[str, Any] = {"input": json.dumps(given, separators=(",", ":"))}
        if "output" in answer:
            data["afterResultPath"] = answer["output"]
        if details:
            data["errorDetails"] = details
        answer["inspectionData"] = data
    return answer


def _matching_retrier(retriers: list[Any], error: str) -> tuple[int, int] | None:
    """The index and first back-off of the first retrier that would retry ``error``, if one would."""
    for index, retrier in enumerate(retriers):
        if not isinstance(retrier, dict):
            continue
        names = retrier.get("ErrorEquals") or []
        # A task's own oversized result is retried by States.ALL in the runner (as AWS recorded
        # it); TestState cannot tell it from a state's oversized output, so it says neither is.
        wildcard = "States.ALL" in names and error not in NOT_MATCHED_BY_ALL
        if error in names or wildcard:
            if retrier.get("MaxAttempts", 3) == 0:
                return None
            return index, int(retrier.get("IntervalSeconds", 1))
    return None


def _caught_error(history: list[dict[str, Any]], output: Any) -> tuple[str, str]:
    """The error and cause a Catch took: the last failure event, or (an error of the state's own
    data flow records none) the ``{"Error", "Cause"}`` object the Catch put in the output."""
    for event in reversed(history):
        if str(event["type"]).endswith("Failed") and "error" in event:
            return str(event["error"]), str(event.get("cause") or "")
    found = _error_object(output)
    return (str(found["Error"]), str(found.get("Cause", ""))) if found else ("States.Runtime", "")


def _error_object(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        if isinstance(value.get("Error"), str) and set(value) <= {"Error", "Cause"}:
            return value
        for item in value.values():
            if (found := _error_object(item)) is not None:
                return found
    return None


def _carry_out(sfn: StepFunctions, effects: list[dict[str, Any]]) -> None:
    """Publish and send what the state's service task did, as the orchestrator would."""
    settings = sfn.client.settings
    for effect in effects:
        if effect["kind"] == "publish":
            publish(sfn.client.redis, settings, effect["payload"])
        elif effect["kind"] == "send":
            attributes = effect.get("attributes") or {}
            message_id = effect.get("message_id") or str(uuid.uuid4())
            message = OutgoingMessage(message_id, message_text(effect["payload"]), attributes)
            Queues(sfn.client.redis, settings).send(effect["target"], [message])


__all__ = ["test_state"]
