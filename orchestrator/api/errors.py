"""Errors as AWS sends them: a code botocore maps to its modelled exception, a message, a status."""

from __future__ import annotations


class ApiError(Exception):
    """An error answered to the client as ``{"__type": code, "message": message}``.

    Args:
        code: AWS's error code (``ExecutionDoesNotExist``, ``ValidationException``...), the
            name botocore raises as ``client.exceptions.<code>``.
        message: what went wrong, where, and how to fix it; never a secret.
        status: the HTTP status, 400 for everything the caller can fix.
        query_code: for a service that once spoke the query protocol (SQS), its code there
            (``AWS.SimpleQueueService.NonExistentQueue``), sent in ``x-amzn-query-error``.
    """

    def __init__(self, code: str, message: str, status: int = 400, query_code: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.query_code = query_code


def validation_error(message: str) -> ApiError:
    return ApiError("ValidationException", message)


def constraint_error(value: object, member: str, constraint: str) -> ApiError:
    """AWS's wording for a member that breaks a constraint of the service model."""
    shown = repr(value) if not isinstance(value, str) or len(value) <= 100 else f"'{value[:100]}...'"
    return validation_error(
        f"1 validation error detected: Value {shown} at '{member}' failed to satisfy constraint: {constraint}"
    )


def serialization_error(message: str) -> ApiError:
    return ApiError("SerializationException", message)


def internal_failure(message: str) -> ApiError:
    return ApiError("InternalFailure", message, status=500)


def service_unavailable(message: str) -> ApiError:
    """AWS's common error for a temporary failure of the server: botocore retries a 503."""
    return ApiError("ServiceUnavailable", message, status=503)
