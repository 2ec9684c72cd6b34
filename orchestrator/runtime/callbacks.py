"""SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat: the answers to a ``.waitForTaskToken`` task.

A Task whose resource ends in ``.waitForTaskToken`` hands ``$$.Task.Token`` to its function
and then waits for someone to answer with that token. An answer is an event on the
orchestrators' event stream, shaped like a worker's report (see ``worker/entry.py``):
``{"type": "TaskSucceeded" | "TaskFailed" | "TaskHeartbeat", "execution", "token", ...}``.

Inside redstep a token reads ``<execution name>:<n>``: the core's fencing token, a new one
for every attempt. Whatever leaves redstep (``$$.Task.Token`` in a payload, a message or a
notification; an activity task) carries it *sealed*: base64url of ``<token>:<mac>``, where
``<mac>`` is 128 bits of HMAC-SHA256 of the token under a per-deployment key that the first
caller creates in Redis (``{p}:task-token-key``, 256 random bits from :mod:`secrets`). A
sealed token cannot be guessed or forged without that key, and is still fenced: after a
retry the execution waits on a new token, so the old one is refused (TaskTimedOut).
The HTTP API accepts sealed tokens only; this library and the CLI, which hold the Redis
connection anyway, accept the plain token too.

Before sending, these functions look the token up in the execution's ``tokens`` map, so a
token nobody waits for is refused with the error AWS answers (TaskDoesNotExist,
TaskTimedOut). The look-up and the send are not one atomic step: a token that lapses in
between is sent anyway, and the orchestrator ignores it, as it ignores every event for a
token the execution no longer holds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from typing import Any

import redis

from orchestrator.protocol.keys import EVENT_FIELD
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.store import Store
from orchestrator.settings import Settings

CALLBACK_KIND = "task"
"""The kind the core records for the token a callback task waits on (timers have other kinds)."""
DISPATCH_KIND = "dispatch"
"""The kind of the token a callback task's dispatch (its function, message or publish) reports on."""
MAC_HEX_CHARS = 32
"""128 bits of the HMAC: far beyond guessing, and the token stays short."""
KEY_BYTES = 32
SEALED_SHAPE = re.compile(r"[A-Za-z0-9_-]{24,}")
"""What a sealed token looks like (unpadded base64url of at least a token and its MAC)."""


class InvalidToken(ValueError):
    """The text is not a task token (AWS: InvalidToken)."""


class TaskDoesNotExist(LookupError):
    """No execution of the token's name exists (AWS: TaskDoesNotExist)."""


class TaskTimedOut(LookupError):
    """The execution no longer waits for this token: it ended or moved on (AWS: TaskTimedOut)."""


def send_task_success(
    redis_client: redis.Redis, settings: Settings, token: str, output: Any, *, sealed_only: bool = False
) -> None:
    """Complete the callback task waiting on ``token`` with ``output`` as its result.

    Args:
        redis_client: the connection.
        settings: the key prefix.
        token: the ``$$.Task.Token`` the task handed out.
        output: the task's result, any JSON value.
        sealed_only: refuse a plain token (the HTTP API: only a sealed one crosses a network).

    Raises:
        InvalidToken: the token is malformed, or is not one a task waits on.
        TaskDoesNotExist: no execution has the token's name.
        TaskTimedOut: the execution no longer waits for the token.
        TypeError: ``output`` is not JSON.
    """
    _send(redis_client, settings, token, {"type": "TaskSucceeded", "output": output}, sealed_only)


def send_task_failure(
    redis_client: redis.Redis,
    settings: Settings,
    token: str,
    error: str | None = None,
    cause: str | None = None,
    *,
    sealed_only: bool = False,
) -> None:
    """Fail the callback task waiting on ``token``; Retry and Catch see ``error`` and ``cause``.

    Raises:
        InvalidToken, TaskDoesNotExist, TaskTimedOut: as for :func:`send_task_success`.
    """
    event: dict[str, Any] = {"type": "TaskFailed", "error": error}
    if cause is not None:
        event["cause"] = cause
    _send(redis_client, settings, token, event, sealed_only)


def send_task_heartbeat(
    redis_client: redis.Redis, settings: Settings, token: str, *, sealed_only: bool = False
) -> None:
    """Tell the callback task waiting on ``token`` that work goes on: its HeartbeatSeconds restart.

    Raises:
        InvalidToken, TaskDoesNotExist, TaskTimedOut: as for :func:`send_task_success`.
    """
    _send(redis_client, settings, token, {"type": "TaskHeartbeat"}, sealed_only)


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


def token_key(redis_client: redis.Redis, keys: Keys) -> bytes:
    """The deployment's sealing key, made (256 random bits) by whoever needs it first."""
    pipe = redis_client.pipeline(transaction=False)  # one round trip
    pipe.set(keys.task_token_key, secrets.token_hex(KEY_BYTES), nx=True)
    pipe.get(keys.task_token_key)
    _, key = pipe.execute()
    if key is None:  # deleted between the two calls: whoever comes next makes another
        raise InvalidToken("the deployment's task token key vanished; send again")
    return bytes(key)


def seal(key: bytes, token: str) -> str:
    """The token as it leaves redstep: opaque, and unforgeable without ``key``."""
    return base64.urlsafe_b64encode(f"{token}:{_mac(key, token)}".encode()).decode().rstrip("=")


def unseal(key: bytes, sealed: str) -> str:
    """The fencing token inside a sealed one.

    Raises:
        InvalidToken: ``sealed`` is not a token this deployment sealed.
    """
    try:
        text = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4)).decode()
    except (binascii.Error, ValueError):
        text = ""
    token, _, mac = text.rpartition(":")
    if not token or not hmac.compare_digest(mac.encode(), _mac(key, token).encode()):
        raise InvalidToken("the task token was not issued by this redstep deployment")
    return token


def seal_handed_tokens(value: Any, sealed: dict[str, str]) -> Any:
    """``value`` with each of ``sealed``'s plain tokens replaced by its sealed form, at any depth
    (also inside a longer string, as ``States.Format`` or a JSON-text message can put it)."""
    if isinstance(value, str):
        if value in sealed:
            return sealed[value]
        if any(token in value for token in sealed):
            pattern = "|".join(re.escape(token) + r"(?!\d)" for token in sealed)
            return re.sub(pattern, lambda match: sealed[match.group()], value)
        return value
    if isinstance(value, dict):
        return {key: seal_handed_tokens(item, sealed) for key, item in value.items()}
    if isinstance(value, list):
        return [seal_handed_tokens(item, sealed) for item in value]
    return value


def _mac(key: bytes, token: str) -> str:
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()[:MAC_HEX_CHARS]


def _plain_token(redis_client: redis.Redis, keys: Keys, token: str, sealed_only: bool) -> str:
    """The fencing token ``token`` stands for (itself when plain, and plain ones are accepted).

    Raises:
        InvalidToken: it is empty, malformed, forged, or plain where only sealed ones are taken.
    """
    if not isinstance(token, str) or not token.strip():
        raise InvalidToken("the task token is empty")
    plain = ":" in token  # base64url, which sealed tokens are written in, has no colon
    if not sealed_only and (plain or not SEALED_SHAPE.fullmatch(token)):
        execution_of(token)  # a plain token from a caller that holds the Redis connection
        return token
    if plain:
        raise InvalidToken("the task token was not issued by this redstep deployment")
    return unseal(token_key(redis_client, keys), token)


def _send(
    redis_client: redis.Redis, settings: Settings, token: str, event: dict[str, Any], sealed_only: bool
) -> None:
    keys = Keys(settings.prefix)
    token = _plain_token(redis_client, keys, token, sealed_only)
    name = execution_of(token)
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
