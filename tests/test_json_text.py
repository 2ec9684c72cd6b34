"""The JSON an orchestrator writes every step reads back as what was written, whatever it holds."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.protocol.decoding import loads
from orchestrator.protocol.json_text import dumps

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too: the standard library writes those
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),  # lone surrogates too
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=30,
)


@given(JSON_VALUES)
def test_any_json_value_reads_back_equal(value: Any) -> None:
    assert loads(dumps(value)) == value


@pytest.mark.parametrize(
    "value",
    [
        {"big": 2**80, "negative": -(2**70)},
        {"lone": "\ud800 surrogate"},
        {1: "an integer key, which JSON writes as a string"},
        [[[[[[]]]]]] * 3,
    ],
    ids=["integers beyond 64 bits", "a lone surrogate", "a key that is not a string", "nested lists"],
)
def test_what_the_fast_encoder_refuses_is_written_as_the_standard_library_writes_it(value: Any) -> None:
    assert loads(dumps(value)) == json.loads(json.dumps(value))


def test_nesting_deeper_than_the_fast_encoder_allows_is_still_written() -> None:
    deep: Any = "bottom"
    for _ in range(400):
        deep = [deep]
    assert loads(dumps(deep)) == deep


def test_text_is_compact_and_keeps_non_ascii_characters() -> None:
    assert dumps({"name": "Smok \u2603", "n": [1, 2.5]}) == '{"name":"Smok \u2603","n":[1,2.5]}'
