"""The Starlette app of ``redstep serve``: AWS's JSON protocol on ``POST /``, and ``GET /healthz``.

A request goes through the same steps whatever the service: read the body (bounded), find
the service and action from ``X-Amz-Target``, check its SigV4 signature, decode the JSON,
check it against the action's input shape, run the handler in a worker thread (the runtime's
client is synchronous), answer JSON. Every answer carries ``x-amzn-RequestId``. Whatever goes
wrong is answered as AWS answers it (``{"__type", "message"}``), never with a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orchestrator.api import sigv4
from orchestrator.api.errors import (
    ApiError,
    internal_failure,
    serialization_error,
    service_unavailable,
    validation_error,
)
from orchestrator.protocol.decoding import strict_loads
from orchestrator.protocol.reconnect import REFUSAL_ERRORS
from orchestrator.runtime.optimistic import CommitConflict

MAX_BODY_BYTES = 8 * 1024 * 1024
"""Far above AWS's largest member (a 1 MiB definition, escaped); the model's limits say the rest."""
JSON_CONTENT_TYPE = "application/x-amz-json-1.0"
DISCONNECT_CHECK_SECONDS = 0.5
"""How often a long poll looks whether its caller is still there."""
log = logging.getLogger("redstep.api")


@dataclass(frozen=True)
class JsonService:
    """One AWS service spoken over the JSON protocol.

    Attributes:
        target_prefix: the part of ``X-Amz-Target`` before the dot (``AWSStepFunctions``).
        signing_name: the service in a SigV4 credential scope (``states``).
        actions: handler by action name.
        context: what the handlers are given (it has the service's ``shapes``).
        with_host: the handlers are also given the request's ``Host`` (SQS makes queue URLs of it).
    """

    target_prefix: str
    signing_name: str
    actions: dict[str, Any]
    context: Any
    with_host: bool = False

    def check_input(self, action: str, body: Any) -> dict[str, Any]:
        return self.context.shapes.check_input(action, body)


@dataclass(frozen=True)
class Endpoint:
    """What the app serves: the services, the credentials (None: signatures are not checked), the region."""

    services: dict[str, JsonService]
    credentials: dict[str, str] | None
    region: str
    # The query-protocol service (SNS): a form-encoded POST without X-Amz-Target goes to it.
    query: Any = None


def create_app(endpoint: Endpoint, healthy: Any) -> Starlette:
    """The ASGI app; ``healthy()`` answers ``/healthz`` with (ok, message)."""

    async def aws(request: Request) -> Response:
        form = request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
        if endpoint.query is not None and form and "x-amz-target" not in request.headers:
            return await endpoint.query(request)  # type: ignore[no-any-return]
        request_id = str(uuid.uuid4())
        try:
            answer = await _serve(endpoint, request)
        except ApiError as error:
            return _error(error, request_id)
        except ClientGone:
            return Response(status_code=499)  # nobody reads it
        except CommitConflict as lost:
            # Other writers kept moving the same execution on: the same request a moment later
            # can pass, so it is a temporary failure the caller's SDK retries, not a crash.
            log.warning("request %s: %s", request_id, lost)
            return _error(service_unavailable(f"{lost}; try again"), request_id)
        except REFUSAL_ERRORS as error:
            # Redis answers but writes nothing for now (full, or a replica): a temporary failure.
            log.warning("request %s: Redis refused a write: %s", request_id, error)
            refused = f"redstep's Redis refuses writes for now ({error}); try again"
            return _error(service_unavailable(refused), request_id)
        except redis.RedisError as error:
            log.warning("request %s: Redis failed: %s", request_id, error)
            return _error(internal_failure("redstep could not reach its Redis; try again"), request_id)
        except Exception:
            log.exception("request %s failed", request_id)
            return _error(
                internal_failure(f"internal error (request id {request_id}, in the serve log)"), request_id
            )
        body = json.dumps(answer, separators=(",", ":"), allow_nan=False)
        return Response(body, media_type=JSON_CONTENT_TYPE, headers={"x-amzn-RequestId": request_id})

    async def healthz(request: Request) -> Response:
        ok, message = await run_in_threadpool(healthy)
        return JSONResponse({"ok": ok, "message": message}, status_code=200 if ok else 503)

    return Starlette(routes=[Route("/", aws, methods=["POST"]), Route("/healthz", healthz, methods=["GET"])])


async def _serve(endpoint: Endpoint, request: Request) -> dict[str, Any]:
    body = await read_body(request, MAX_BODY_BYTES, _too_large)
    service, action = _target(endpoint, request.headers.get("x-amz-target"))
    if endpoint.credentials is not None:
        signed = signed_request(request, body)
        sigv4.verify(signed, endpoint.credentials, endpoint.region, service.signing_name, datetime.now(UTC))
    if action not in service.actions:
        raise ApiError(
            "UnknownOperationException",
            f"{service.target_prefix} has no action {action!r} served by redstep"
            f" (served: {', '.join(sorted(service.actions))})",
        )
    parsed = service.check_input(action, _json_body(body))
    handler = service.actions[action]
    arguments: tuple[Any, ...] = (service.context, parsed)
    if service.with_host:
        arguments += (request.headers.get("host") or "localhost",)
    if inspect.iscoroutinefunction(handler):
        # A long poll (GetActivityTask, StartSyncExecution, ReceiveMessage) waits in the event
        # loop, not a thread: the threads are few, and idle consumers would hold every one.
        return await _unless_disconnected(request, handler(*arguments))
    return await run_in_threadpool(handler, *arguments)


class ClientGone(Exception):
    """The caller hung up while its request waited (a worker stopped mid-poll)."""


async def _unless_disconnected(request: Request, work: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """``work``'s answer; cancelled once the caller hangs up, so a poll nobody reads takes no task."""
    task = asyncio.ensure_future(work)
    while True:
        done, _ = await asyncio.wait({task}, timeout=DISCONNECT_CHECK_SECONDS)
        if done:
            return task.result()
        if await request.is_disconnected():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            raise ClientGone


async def read_body(request: Request, limit: int, too_large: Callable[[], ApiError]) -> bytes:
    """The request's body, refused with ``too_large()`` as soon as it is known to pass ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def signed_request(request: Request, body: bytes) -> sigv4.SignedRequest:
    """What SigV4 signed of ``request``: method, raw path and query, headers and ``body``, as sent."""
    return sigv4.SignedRequest(
        method=request.method,
        path=request.scope.get("raw_path", b"/").decode("latin-1") or "/",
        query=request.scope.get("query_string", b"").decode("latin-1"),
        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]],
        body=body,
    )


def _too_large() -> ApiError:
    return validation_error(f"the request body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB")


def _target(endpoint: Endpoint, target: str | None) -> tuple[JsonService, str]:
    if not target:
        raise ApiError(
            "UnknownOperationException",
            "the request names no action: send it with an X-Amz-Target header such as"
            " AWSStepFunctions.ListStateMachines (an AWS SDK or the AWS CLI does)",
        )
    prefix, _, action = target.partition(".")
    service = endpoint.services.get(prefix)
    if service is None:
        raise ApiError(
            "UnknownOperationException",
            f"X-Amz-Target {target[:100]!r} names no service served here"
            f" (served: {', '.join(endpoint.services)})",
        )
    return service, action


def _json_body(body: bytes) -> Any:
    try:
        return strict_loads(body)
    except ValueError as error:
        raise serialization_error(f"the request body is not JSON: {error}") from None


def _error(error: ApiError, request_id: str) -> Response:
    body = json.dumps({"__type": error.code, "message": error.message})
    headers = {"x-amzn-RequestId": request_id}
    if error.query_code:
        headers["x-amzn-query-error"] = f"{error.query_code};{'Sender' if error.status < 500 else 'Receiver'}"
    return Response(body, status_code=error.status, media_type=JSON_CONTENT_TYPE, headers=headers)
