"""Opaque, tamper-evident ``nextToken``s.

A token carries where the next page starts and what listing it belongs to, signed with an
HMAC, so a forged or edited token, or one handed to another listing, is refused as AWS
refuses it (InvalidToken). Every ``serve`` process given the same key accepts the others'
tokens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from orchestrator.api.errors import ApiError

TAG_BYTES = 16


class PageTokens:
    """Issues and reads page tokens signed with ``key``."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def issue(self, listing: str, cursor: Any) -> str:
        """A token for the page of ``listing`` that starts at ``cursor`` (any JSON value)."""
        payload = json.dumps([listing, cursor], separators=(",", ":")).encode()
        return _b64(payload) + "." + _b64(self._tag(payload))

    def read(self, token: str, listing: str) -> Any:
        """The cursor ``token`` carries.

        Raises:
            ApiError: InvalidToken when the token was not issued here or not for ``listing``.
        """
        encoded_payload, _, encoded_tag = token.partition(".")
        try:
            payload, tag = _unb64(encoded_payload), _unb64(encoded_tag)
        except (binascii.Error, ValueError):
            raise _invalid(token) from None
        if not hmac.compare_digest(tag, self._tag(payload)):
            raise _invalid(token)
        issued_for, cursor = json.loads(payload)
        if issued_for != listing:
            raise ApiError(
                "InvalidToken",
                "Invalid Token: this nextToken was issued for another listing; pass the same"
                " parameters as the call that returned it",
            )
        return cursor

    def _tag(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:TAG_BYTES]


def listing_key(action: str, **parameters: Any) -> str:
    """What a token is bound to: the action and the parameters that select the items."""
    return json.dumps([action, parameters], sort_keys=True, separators=(",", ":"))


def token_key(secrets: list[str], prefix: str) -> bytes:
    """The key every ``serve`` process of one installation derives alike from its configuration."""
    material = "\0".join(["redstep page tokens", prefix, *sorted(secrets)]).encode()
    return hashlib.sha256(material).digest()


def _invalid(token: str) -> ApiError:
    shown = token if len(token) <= 40 else token[:40] + "..."
    return ApiError("InvalidToken", f"Invalid Token: '{shown}' is not a nextToken this endpoint issued")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not text:
        raise ValueError("empty")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
