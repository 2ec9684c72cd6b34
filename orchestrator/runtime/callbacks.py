"""SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat: the answers to a ``.waitForTaskToken`` task.

A Task whose resource ends in ``.waitForTaskToken`` hands ``$$.Task.Token`` to its function
and then waits for someone to answer with that token. An answer is an event on the
orchestrators' event stream, shaped like a worker's report (see ``worker/entry.py``):
``{"type": "TaskSucceeded" | "TaskFailed" | "TaskHeartbeat", "execution", "token", ...}``.

A token reads ``<execution name>:<n>``. Before sending, these functions look the token up
in the execution's ``tokens`` map, so a token nobody waits for is refused with the error
AWS answers (TaskDoesNotExist, TaskTimedOut). The look-up and the send are not one atomic
step: a token that lapses in between is sent anyway, and the orchestrator ignores it, as it
ignores every event for a token the execution no longer holds.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from orchestrator.protocol.keys import EVENT_FIELD
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.store import Store
from orchestrator.settings import Settings

CALLBACK_KIND = "task"
"""The kind the core records for the token a callback task waits on (timers have other kinds)."""


class InvalidToken(ValueError):
    """The text is not a task token (AWS: InvalidToken)."""


class TaskDoesNotExist(LookupError):
    """No execution of the token's name exists (AWS: TaskDoesNotExist)."""


class TaskTimedOut(LookupError):
    """The execution no longer waits for this token: it ended or moved on (AWS: TaskTimedOut)."""


def send_task_success(redis_client: redis.Redis, settings: Settings, token: str, output: Any) -> None:
    """Complete the callback task waiting on ``token`` with ``output`` as its result.

    Args:
        redis_client: the connection.
        settings: the key prefix.
        token: the ``$$.Task.Token`` the task handed out.
        output: the task's result, any JSON value.

    Raises:
        InvalidToken: the token is malformed, or is not one a task waits on.
        TaskDoesNotExist: no execution has the token's name.
        TaskTimedOut: the execution no longer waits for the token.
        TypeError: ``output`` is not JSON.
    """
    _send(redis_client, settings, token, {"type": "TaskSucceeded", "output": output})


def send_task_failure(
    redis_client: redis.Redis,
    settings: Settings,
    token: str,
    error: str | None = None,
    cause: str | None = None,
) -> None:
    """Fail the callback task waiting on ``token``; Retry and Catch see ``error`` and ``cause``.

    Raises:
        InvalidToken, TaskDoesNotExist, TaskTimedOut: as for :func:`send_task_success`.
    """
    event: dict[str, Any] = {"type": "TaskFailed", "error": error}
    if cause is not None:
        event["cause"] = cause
    _send(redis_client, settings, token, event)


def send_task_heartbeat(redis_client: redis.Redis, settings: Settings, token: str) -> None:
    """Tell the callback task waiting on ``token`` that work goes on: its HeartbeatSeconds restart.

    Raises:
        InvalidToken, TaskDoesNotExist, TaskTimedOut: as for :func:`send_task_success`.
    """
    _send(redis_client, settings, token, {"type": "TaskHeartbeat"})


def execution_of(token: str) -> str:
    """The name of the execution a token belongs to.

    Raises:
        InvalidToken: when ``token`` is not ``<execution name>:<n>``.
    """
    if not isinstance(token, str) or not token.strip():
        raise InvalidToken("the task token is empty")
    name, separator, sequence = token.rpartition(":")
    if not separator or not name:
        raise InvalidToken(f"malformed task token {token!r}: expected '<execution name>:<number>'")
    if not sequence.isdigit():
        raise InvalidToken(f"malformed task token {token!r}: it does not end in ':<number>'")
    return name


def _send(redis_client: redis.Redis, settings: Settings, token: str, event: dict[str, Any]) -> None:
    name = execution_of(token)
    keys = Keys(settings.prefix)
    _check_waiting(Store(redis_client, keys), name, token)
    message = json.dumps({**event, "execution": name, "token": token}, allow_nan=False)
    redis_client.xadd(keys.events, {EVENT_FIELD: message})


def _check_waiting(store: Store, name: str, token: str) -> None:
    execution = store.load([name])[name][0]
    if execution is None:
        raise TaskDoesNotExist(f"no execution named {name!r} (from task token {token!r})")
    owner = execution.get("tokens", {}).get(token)
    if owner is None:
        raise TaskTimedOut(
            f"execution {name!r} ({execution['status']}) no longer waits for task token {token!r}"
        )
    if owner[1] != CALLBACK_KIND:
        # Timer tokens share the numbering; answering one would fire that timer early.
        raise InvalidToken(
            f"{token!r} is not a task token: execution {name!r} uses it for a {owner[1]} timer"
        )
