"""The 256 KiB payload limit: the cheap bounds never decide differently from measuring."""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.asl.json_values import PAYLOAD_LIMIT_BYTES, exceeds_payload_limit


def measured(value: Any) -> bool:
    if isinstance(value, str):
        return len(value.encode()) > PAYLOAD_LIMIT_BYTES
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return len(text.encode()) > PAYLOAD_LIMIT_BYTES


def record_of(size: int, char: str = "a") -> dict[str, Any]:
    """An object of strings, booleans and nulls whose JSON takes about ``size`` bytes."""
    return {"name": char * size, "flag": False, "gone": None}


@pytest.mark.parametrize(
    "value",
    [
        record_of(PAYLOAD_LIMIT_BYTES - 100),
        record_of(PAYLOAD_LIMIT_BYTES),
        record_of(PAYLOAD_LIMIT_BYTES // 6, "\x01"),  # six bytes each as JSON
        record_of(PAYLOAD_LIMIT_BYTES // 6 + 10, "\x01"),
        record_of(PAYLOAD_LIMIT_BYTES // 3 - 20, "é"),
        record_of(PAYLOAD_LIMIT_BYTES // 2, "é"),
        {"nested": record_of(PAYLOAD_LIMIT_BYTES)},
        [record_of(PAYLOAD_LIMIT_BYTES // 2), record_of(PAYLOAD_LIMIT_BYTES // 2)],
        OrderedDict(record_of(PAYLOAD_LIMIT_BYTES)),
        "a" * (PAYLOAD_LIMIT_BYTES + 1),
        "é" * (PAYLOAD_LIMIT_BYTES // 2 + 1),
        {str(n): n for n in range(30_000)},
    ],
    ids=lambda value: f"{type(value).__name__}-{len(json.dumps(value))}",
)
def test_values_near_the_limit_are_judged_as_measured(value: Any) -> None:
    assert exceeds_payload_limit(value) == measured(value)


def test_the_cases_near_the_limit_fall_on_both_sides() -> None:
    assert exceeds_payload_limit(record_of(PAYLOAD_LIMIT_BYTES))
    assert not exceeds_payload_limit(record_of(PAYLOAD_LIMIT_BYTES - 100))


json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)


@given(json_values)
def test_small_values_never_exceed(value: Any) -> None:
    assert exceeds_payload_limit(value) is False
