"""SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat over runtime.callbacks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.api.errors import ApiError
from orchestrator.api.stepfunctions.context import StepFunctions
from orchestrator.protocol.decoding import strict_loads
from orchestrator.runtime import callbacks


def send_task_success(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    try:
        output = strict_loads(request["output"])
    except ValueError as error:
        raise ApiError("InvalidOutput", f"Invalid Output: the output is not JSON: {error}") from None
    _answer(
        lambda: callbacks.send_task_success(
            sfn.client.redis, sfn.client.settings, request["taskToken"], output, sealed_only=True
        )
    )
    return {}


def send_task_failure(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    token, error, cause = request["taskToken"], request.get("error"), request.get("cause")
    _answer(
        lambda: callbacks.send_task_failure(
            sfn.client.redis, sfn.client.settings, token, error, cause, sealed_only=True
        )
    )
    return {}


def send_task_heartbeat(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    _answer(
        lambda: callbacks.send_task_heartbeat(
            sfn.client.redis, sfn.client.settings, request["taskToken"], sealed_only=True
        )
    )
    return {}


def _answer(send: Callable[[], None]) -> None:
    try:
        send()
    except callbacks.InvalidToken as error:
        raise ApiError("InvalidToken", f"Invalid Token: {error}") from None
    except callbacks.TaskDoesNotExist as error:
        raise ApiError("TaskDoesNotExist", f"Task Does Not Exist: {error}") from None
    except callbacks.TaskTimedOut as error:
        raise ApiError("TaskTimedOut", f"Task Timed Out: {error}") from None
