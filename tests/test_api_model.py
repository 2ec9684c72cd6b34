"""The vendored service model matches botocore's; page tokens cannot be forged or moved."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.api.errors import ApiError
from orchestrator.api.models import VENDORED
from orchestrator.api.pagination import PageTokens, listing_key
from tests.api_model_subset import model_subset, render


@pytest.mark.parametrize("service", ["stepfunctions", "sqs", "sns"])
def test_the_vendored_service_model_is_the_installed_botocores(service: str) -> None:
    vendored = Path(VENDORED[service]).read_text()
    assert vendored == render(model_subset(service)), "regenerate it: python -m tests.api_model_subset"


def test_a_page_token_gives_back_its_cursor_for_the_same_listing_only() -> None:
    tokens = PageTokens(b"k" * 32)
    listing = listing_key("ListExecutions", arn="arn:1", status=None)
    token = tokens.issue(listing, [1796545325.3990512, "exec-7"])
    assert tokens.read(token, listing) == [1796545325.3990512, "exec-7"]
    with pytest.raises(ApiError) as moved:
        tokens.read(token, listing_key("ListExecutions", arn="arn:2", status=None))
    assert moved.value.code == "InvalidToken"


@pytest.mark.parametrize("forged", ["", "abc", "eyJ9.AAAA", "not.a.token", "%%%.%%%"])
def test_a_forged_page_token_is_refused_as_invalid(forged: str) -> None:
    with pytest.raises(ApiError) as refused:
        PageTokens(b"k" * 32).read(forged, "x")
    assert refused.value.code == "InvalidToken"


def test_a_page_token_edited_or_issued_with_another_key_is_refused() -> None:
    issuer = PageTokens(b"a" * 32)
    token = issuer.issue("x", 10)
    payload, _, tag = token.partition(".")
    edited = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + tag
    for reader, candidate in ((issuer, edited), (PageTokens(b"b" * 32), token)):
        with pytest.raises(ApiError) as refused:
            reader.read(candidate, "x")
        assert refused.value.code == "InvalidToken"
