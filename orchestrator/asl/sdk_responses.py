"""What an optimized integration's result carries besides the API's answer: the HTTP response's metadata.

AWS-recorded results of lambda:invoke, sqs:sendMessage, sns:publish and states:startExecution
(LocalStack's snapshots of real executions) all hold ``SdkHttpMetadata``: the response's
headers, each also as a one-element list under ``AllHttpHeaders``, and ``HttpStatusCode``
200; and ``SdkResponseMetadata.RequestId``. An AWS SDK integration's result
(``arn:aws:states:::aws-sdk:...``) is the API's answer alone.
"""

from __future__ import annotations

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
