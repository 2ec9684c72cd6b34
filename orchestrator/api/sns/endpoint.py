"""SNS over HTTP: a form-encoded ``POST /`` (no ``X-Amz-Target``) checked, decoded, run, answered in XML.

The same steps as the JSON services (bounded body, SigV4 with the ``sns`` scope, the model's
input checks, the handler in a worker thread), with the query protocol's encodings and its
error codes: ``InvalidClientTokenId`` for an unknown key, ``SignatureDoesNotMatch`` for a
bad signature, ``InvalidAction``, ``ValidationError`` and ``InvalidParameter`` for bad input.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import redis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from orchestrator.api import sigv4
from orchestrator.api.app import read_body, signed_request
from orchestrator.api.errors import ApiError
from orchestrator.api.sns import protocol
from orchestrator.api.sns.context import Sns

MAX_BODY_BYTES = 1024 * 1024
"""Above SNS's largest request (a 256 KiB message, or ten in a batch, form-encoded)."""
XML_CONTENT_TYPE = "text/xml"
SIGNATURE_CODES = {
    "UnrecognizedClientException": "InvalidClientTokenId",
    "InvalidSignatureException": "SignatureDoesNotMatch",
}
log = logging.getLogger("redstep.api.sns")


class SnsEndpoint:
    """The ASGI-side handler of SNS requests; ``credentials`` None serves without signatures."""

    def __init__(
        self, sns: Sns, actions: dict[str, Any], credentials: dict[str, str] | None, region: str
    ) -> None:
        self.sns = sns
        self.actions = actions
        self.credentials = credentials
        self.region = region

    async def __call__(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        try:
            action, answer = await self._serve(request)
        except ApiError as error:
            return _error(error.code, error.message, error.status, request_id)
        except redis.RedisError as error:
            log.warning("request %s: Redis failed: %s", request_id, error)
            return _error("InternalError", "redstep could not reach its Redis; try again", 500, request_id)
        except Exception:
            log.exception("request %s failed", request_id)
            return _error(
                "InternalError",
                f"internal error (request id {request_id}, in the serve log)",
                500,
                request_id,
            )
        document = protocol.response(self.sns.shapes, action, answer, request_id)
        return Response(document, media_type=XML_CONTENT_TYPE, headers={"x-amzn-RequestId": request_id})

    async def _serve(self, request: Request) -> tuple[str, dict[str, Any]]:
        body = await read_body(request, MAX_BODY_BYTES, _too_large)
        if self.credentials is not None:
            signed = signed_request(request, body)
            try:
                sigv4.verify(signed, self.credentials, self.region, "sns", datetime.now(UTC))
            except ApiError as error:
                raise ApiError(
                    SIGNATURE_CODES.get(error.code, error.code), error.message, status=403
                ) from None
        try:
            form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
        except UnicodeDecodeError:
            raise ApiError("MalformedQueryString", "the request body is not UTF-8 form data") from None
        form.update(dict(parse_qsl(request.url.query, keep_blank_values=True)))
        action = form.get("Action", "")
        if action not in self.actions:
            raise ApiError(
                "InvalidAction",
                f"The action {action[:100]!r} is not valid for this endpoint"
                f" (SNS actions served: {', '.join(sorted(self.actions))})",
            )
        shapes = self.sns.shapes
        parsed = protocol.decode(shapes, shapes.operations[action]["input"], form)
        try:
            shapes.check_input(action, parsed)
        except ApiError as error:
            code = "ValidationError" if error.code == "ValidationException" else "InvalidParameter"
            raise ApiError(code, error.message) from None
        return action, await run_in_threadpool(self.actions[action], self.sns, parsed)


def _too_large() -> ApiError:
    return ApiError("RequestEntityTooLarge", f"the request body is larger than {MAX_BODY_BYTES} bytes", 413)


def _error(code: str, message: str, status: int, request_id: str) -> Response:
    document = protocol.error_document(code, message, status < 500, request_id)
    return Response(
        document, status_code=status, media_type=XML_CONTENT_TYPE, headers={"x-amzn-RequestId": request_id}
    )
