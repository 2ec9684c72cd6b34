"""What an optimized integration's result carries besides the API's answer: the HTTP response's metadata.

AWS-recorded results of lambda:invoke, sqs:sendMessage, sns:publish and states:startExecution
(LocalStack's snapshots of real executions) all hold ``SdkHttpMetadata``: the response's
headers, each also as a one-element list under ``AllHttpHeaders``, and ``HttpStatusCode``
200; and ``SdkResponseMetadata.RequestId``. An AWS SDK integration's result
(``arn:aws:states:::aws-sdk:...``) is the API's answer alone.

A refusal is worded as the Java SDK that made the call words it: version 1 for an optimized
integration (``(Service: AmazonSQS; Status Code: 400; Error Code: ...; Proxy: null)``), version 2
for an AWS SDK integration (``(Service: Sqs, Status Code: 400, ...) (SDK Attempt Count: 1)``),
as AWS recorded them.
"""

from __future__ import annotations

import uuid
from email.utils import formatdate
from typing import Any

JSON_1_0 = "application/x-amz-json-1.0"  # how the JSON-protocol APIs (SQS, Step Functions) answer
XML = "text/xml"  # how SNS answers


def response_headers(content_type: str, length: int, now: float, request_id: str) -> dict[str, str]:
    """The headers every recorded response has: connection, Content-Length, Content-Type, Date, request id."""
    return {
        "connection": "keep-alive",
        "Content-Length": str(length),
        "Content-Type": content_type,
        "Date": formatdate(now, usegmt=True),
        "x-amzn-RequestId": request_id,
    }


def with_metadata(answer: dict[str, Any], headers: dict[str, str], request_id: str) -> dict[str, Any]:
    """``answer`` with the response's metadata beside it, as an optimized integration returns it."""
    return {
        **answer,
        "SdkHttpMetadata": {
            "AllHttpHeaders": {key: [value] for key, value in headers.items()},
            "HttpHeaders": headers,
            "HttpStatusCode": 200,
        },
        "SdkResponseMetadata": {"RequestId": request_id},
    }


def sdk_v1_failure(error: str, message: str, service: str, code: str, status: int = 400) -> dict[str, Any]:
    """The TaskFailed report of a call an optimized integration made and ``service`` refused with ``code``."""
    details = f"Service: {service}; Status Code: {status}; Error Code: {code}; Request ID: {uuid.uuid4()}"
    return {"type": "TaskFailed", "error": error, "cause": f"{message} ({details}; Proxy: null)"}


def sdk_v2_failure(error: str, message: str, service: str, status: int = 400) -> dict[str, Any]:
    """The TaskFailed report of a call an AWS SDK integration made and ``service`` refused."""
    details = (
        f"(Service: {service}, Status Code: {status}, Request ID: {uuid.uuid4()}) (SDK Attempt Count: 1)"
    )
    return {"type": "TaskFailed", "error": error, "cause": f"{message} {details}"}
