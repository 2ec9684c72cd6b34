"""Signature Version 4, checked as AWS checks it.

The canonical request is rebuilt from what arrived: the method, the path, the query, the
headers the client says it signed, and the SHA-256 of the body as received (so a body changed
on the way no longer matches). The credential scope must name this endpoint's region and the
service the request is for, ``X-Amz-Date`` must lie within AWS's 15 minutes of now, and the
signatures are compared in constant time. No secret ever reaches a message or a log.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from urllib.parse import quote

from orchestrator.api.errors import ApiError

ALGORITHM = "AWS4-HMAC-SHA256"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_SKEW = timedelta(minutes=15)
AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]{64})\s*$"
)
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS"
    " Secret Access Key and signing method. Consult the service documentation for details."
)


@dataclass(frozen=True)
class SignedRequest:
    """A request as the signature covers it.

    Attributes:
        method: ``POST``, ``GET``...
        path: the path as sent on the wire (percent-encoded, without the query).
        query: the query string as sent, without ``?``.
        headers: every header as (name, value) pairs, names in any case, repeats kept.
        body: the body as received.
    """

    method: str
    path: str
    query: str
    headers: Sequence[tuple[str, str]]
    body: bytes


def verify(
    request: SignedRequest, credentials: Mapping[str, str], region: str, service: str, now: datetime
) -> str:
    """Check the request's SigV4 signature; return the access key id it was signed with.

    Raises:
        ApiError: MissingAuthenticationTokenException when it carries no signature,
            UnrecognizedClientException for an unknown access key, InvalidSignatureException for
            a malformed or mismatching signature, a wrong scope or a stale date.
    """
    headers = _header_map(request.headers)
    authorization = headers.get("authorization")
    if authorization is None:
        raise ApiError(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token: sign the request with Signature Version 4"
            " (an AWS SDK or the AWS CLI does this given an access key)",
        )
    match = AUTHORIZATION.match(authorization)
    if match is None:
        raise ApiError(
            "IncompleteSignatureException",
            "Authorization header must be 'AWS4-HMAC-SHA256 Credential=<key id>/<date>/<region>/<service>"
            "/aws4_request, SignedHeaders=<names;...>, Signature=<64 hex digits>'",
        )
    key_id, scope = _scope(match["credential"], region, service)
    secret = credentials.get(key_id)
    if secret is None:
        raise ApiError(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    amz_date = _request_date(headers, scope[0], now)
    signed = match["signed"].split(";")
    if "host" not in signed:
        raise ApiError(
            "InvalidSignatureException", "The host header must be signed (SignedHeaders lacks host)."
        )
    missing = [name for name in signed if name not in headers]
    if missing:
        raise ApiError(
            "InvalidSignatureException", f"SignedHeaders names headers the request lacks: {missing}"
        )
    canonical = canonical_request(request, signed, headers)
    credential_scope = "/".join((*scope, "aws4_request"))
    to_sign = "\n".join((ALGORITHM, amz_date, credential_scope, _sha256(canonical.encode())))
    expected = hmac.new(_signing_key(secret, *scope), to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, match["signature"]):
        raise ApiError("InvalidSignatureException", MISMATCH)
    return key_id


def canonical_request(request: SignedRequest, signed: Sequence[str], headers: Mapping[str, str]) -> str:
    """The canonical request of SigV4 (as botocore builds it for services other than S3)."""
    canonical_headers = "".join(f"{name}:{headers[name]}\n" for name in signed)
    return "\n".join(
        (
            request.method.upper(),
            _canonical_path(request.path),
            _canonical_query(request.query),
            canonical_headers,
            ";".join(signed),
            _sha256(request.body),
        )
    )


def _header_map(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    # Repeated headers join with commas; runs of spaces inside a value count as one.
    joined: dict[str, list[str]] = {}
    for name, value in pairs:
        joined.setdefault(name.lower(), []).append(" ".join(value.split()))
    return {name: ",".join(values) for name, values in joined.items()}


def _scope(credential: str, region: str, service: str) -> tuple[str, tuple[str, str, str]]:
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise ApiError(
            "IncompleteSignatureException",
            "Credential must be '<key id>/<yyyymmdd>/<region>/<service>/aws4_request',"
            f" not {len(parts)} parts",
        )
    key_id, date, scope_region, scope_service, _ = parts
    if scope_region != region:
        raise ApiError(
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region: this endpoint serves {region!r},"
            f" the request was signed for {scope_region!r} (set the client's region to {region})",
        )
    if scope_service != service:
        raise ApiError(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{service}', not {scope_service!r}.",
        )
    return key_id, (date, scope_region, scope_service)


def _request_date(headers: Mapping[str, str], scope_date: str, now: datetime) -> str:
    amz_date = headers.get("x-amz-date")
    if amz_date is None:
        raise ApiError("IncompleteSignatureException", "The request must carry an X-Amz-Date header.")
    try:
        when = datetime.strptime(amz_date, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise ApiError(
            "IncompleteSignatureException", f"X-Amz-Date {amz_date!r} is not in the form 20260101T120000Z."
        ) from None
    if not amz_date.startswith(scope_date):
        raise ApiError(
            "InvalidSignatureException",
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP:"
            f" '{scope_date}' != '{amz_date[:8]}'",
        )
    shown = now.strftime(AMZ_DATE_FORMAT)
    if when < now - MAX_SKEW:
        raise ApiError(
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is now earlier than {(now - MAX_SKEW).strftime(AMZ_DATE_FORMAT)}"
            f" ({shown} - 15 min.)",
        )
    if when > now + MAX_SKEW:
        raise ApiError(
            "InvalidSignatureException",
            f"Signature not yet current: {amz_date} is still later than"
            f" {(now + MAX_SKEW).strftime(AMZ_DATE_FORMAT)} ({shown} + 15 min.)",
        )
    return amz_date


def _canonical_path(path: str) -> str:
    # As botocore for every service but S3: dot segments and empty segments removed (RFC 3986
    # 5.2.4, plus AWS's rule on consecutive slashes), then the path encoded once more.
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    trailing = "/" if path.endswith("/") and segments else ""
    return quote("/" + "/".join(segments) + trailing, safe="/~")


def _canonical_query(query: str) -> str:
    if not query:
        return ""
    pairs = sorted((key, value) for key, _, value in (pair.partition("=") for pair in query.split("&")))
    return "&".join(f"{key}={value}" for key, value in pairs)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@lru_cache(maxsize=256)
def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key
