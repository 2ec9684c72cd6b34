"""The SigV4 verifier against botocore's own signer, on many generated requests."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock
from urllib.parse import quote, urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from orchestrator.api import sigv4
from orchestrator.api.errors import ApiError

KEY_ID, SECRET = "AKIDCROSSCHECK", "cross/check+secret"
CREDENTIALS = {KEY_ID: SECRET, "AKIDOTHER": "another-secret"}
SIGNED_AT = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)


def signed_by_botocore(
    rng: random.Random, secret: str = SECRET, service: str = "states", region: str = "us-east-1"
) -> sigv4.SignedRequest:
    """A random request (path, query, headers, body) signed by botocore.auth.SigV4Auth."""
    segments = [
        "".join(rng.choices(string.ascii_letters + "-_.~ %:@", k=rng.randint(0, 8))) for _ in range(3)
    ]
    path = "/" + "/".join(quote(s, safe="") for s in segments if rng.random() < 0.8)
    query = "&".join(
        f"{quote(rng.choice(['a', 'B', 'x-y', 'Action']))}={quote(str(rng.randint(0, 99)))}"
        for _ in range(rng.randint(0, 3))
    )
    body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
    request = AWSRequest(
        method=rng.choice(["POST", "GET", "PUT"]),
        url=f"http://127.0.0.1:8083{path}" + (f"?{query}" if query else ""),
        data=body,
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": f"AWSStepFunctions.Op{rng.randint(0, 9)}",
            "X-Custom": "  spaced   out  value ",
        },
    )
    with mock.patch("botocore.auth.get_current_datetime", return_value=SIGNED_AT.replace(tzinfo=None)):
        SigV4Auth(Credentials(KEY_ID, secret), service, region).add_auth(request)
    prepared = request.prepare()
    url = urlsplit(prepared.url)
    headers = [(name, value) for name, value in prepared.headers.items()]
    headers.append(("Host", url.netloc))
    return sigv4.SignedRequest(prepared.method, url.path or "/", url.query, headers, body)


def verify(request: sigv4.SignedRequest, now: datetime = SIGNED_AT, **overrides: Any) -> str:
    options = {"credentials": CREDENTIALS, "region": "us-east-1", "service": "states", "now": now}
    options.update(overrides)
    return sigv4.verify(request, **options)


def refusal(request: sigv4.SignedRequest, **overrides: Any) -> ApiError:
    with pytest.raises(ApiError) as refused:
        verify(request, **overrides)
    return refused.value


def test_every_request_botocore_signs_is_accepted_with_its_access_key() -> None:
    rng = random.Random(20261206)
    for _ in range(500):
        request = signed_by_botocore(rng)
        assert verify(request) == KEY_ID, request


def test_a_request_changed_after_signing_is_refused_whatever_changed() -> None:
    rng = random.Random(7)
    for index in range(200):
        request = signed_by_botocore(rng)
        change = index % 4
        if change == 0:
            tampered = request.__class__(
                request.method, request.path, request.query, request.headers, request.body + b" "
            )
        elif change == 1:
            tampered = request.__class__(
                request.method, request.path + "x", request.query, request.headers, request.body
            )
        elif change == 2:
            headers = [(n, v + "9" if n.lower() == "x-amz-target" else v) for n, v in request.headers]
            tampered = request.__class__(request.method, request.path, request.query, headers, request.body)
        else:
            tampered = request.__class__("DELETE", request.path, request.query, request.headers, request.body)
        assert refusal(tampered).code == "InvalidSignatureException"


def test_a_request_signed_with_another_secret_is_refused_as_a_signature_mismatch() -> None:
    error = refusal(signed_by_botocore(random.Random(1), secret="not-the-secret"))
    assert error.code == "InvalidSignatureException"
    assert "does not match" in error.message
    assert SECRET not in error.message and "not-the-secret" not in error.message


def test_an_unknown_access_key_is_an_unrecognized_client() -> None:
    error = refusal(signed_by_botocore(random.Random(2)), credentials={"AKIDSOMEONEELSE": SECRET})
    assert error.code == "UnrecognizedClientException"


def test_a_signature_older_or_newer_than_fifteen_minutes_is_refused_and_within_it_accepted() -> None:
    request = signed_by_botocore(random.Random(3))
    assert verify(request, now=SIGNED_AT + timedelta(minutes=14, seconds=59)) == KEY_ID
    assert verify(request, now=SIGNED_AT - timedelta(minutes=14, seconds=59)) == KEY_ID
    stale = refusal(request, now=SIGNED_AT + timedelta(minutes=15, seconds=1))
    assert stale.code == "InvalidSignatureException" and stale.message.startswith("Signature expired")
    early = refusal(request, now=SIGNED_AT - timedelta(minutes=15, seconds=1))
    assert early.code == "InvalidSignatureException" and "not yet current" in early.message


def test_a_scope_of_another_region_or_service_is_refused_naming_what_is_served() -> None:
    other_region = refusal(signed_by_botocore(random.Random(4), region="eu-west-1"))
    assert other_region.code == "InvalidSignatureException" and "'us-east-1'" in other_region.message
    other_service = refusal(signed_by_botocore(random.Random(5), service="sqs"))
    assert other_service.code == "InvalidSignatureException" and "'states'" in other_service.message


def test_a_request_without_signature_or_with_a_malformed_one_is_refused() -> None:
    request = signed_by_botocore(random.Random(6))
    unsigned = [(n, v) for n, v in request.headers if n.lower() != "authorization"]
    bare = sigv4.SignedRequest(request.method, request.path, request.query, unsigned, request.body)
    assert refusal(bare).code == "MissingAuthenticationTokenException"
    garbled = sigv4.SignedRequest(
        request.method, request.path, request.query, [*unsigned, ("Authorization", "AWS4-HMAC-SHA256 x")], b""
    )
    assert refusal(garbled).code == "IncompleteSignatureException"
