"""Hostile record files: whatever ``redstep produce`` is given, it refuses with InvalidRecords or accepts.

No input may escape as another exception type (a RecursionError, a TypeError), and a file
with one bad record enqueues nothing, so a valid record is never half-sent beside a bad one.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producer.records import RECORD_FIELDS, DragonRecord, InvalidRecords, load_records, validate_records

FAST = settings(max_examples=150, deadline=None)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


# st.characters() leaves out surrogates; a JSON escape such as "\ud800" decodes to one.
SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"])


def valid_record(name: str = "Bahamethut") -> dict[str, Any]:
    record = {field: f"{field} value" for field in RECORD_FIELDS}
    record["dragon_name_str"] = name
    return record


def deep_array(levels: int) -> str:
    return "[" * levels + "]" * levels


def outcome(text: str) -> list[DragonRecord] | InvalidRecords:
    """The records ``text`` holds, or the InvalidRecords it raises; any other exception fails the test."""
    try:
        return load_records(io.StringIO(text))
    except InvalidRecords as error:
        return error


@FAST
@given(st.text(max_size=300))
def test_any_text_as_a_record_file_is_either_records_or_invalid_records(text: str) -> None:
    result = outcome(text)

    if isinstance(result, InvalidRecords):
        assert result.problems and all(isinstance(problem, str) for problem in result.problems)
    else:
        assert all(isinstance(record, DragonRecord) for record in result)


@FAST
@given(st.lists(json_values, max_size=6))
def test_any_json_array_is_validated_record_by_record_and_names_each_bad_index(values: list[Any]) -> None:
    result = outcome(json.dumps(values))

    bad = [index for index, value in enumerate(values) if not _is_valid(value)]
    if bad:
        assert isinstance(result, InvalidRecords)
        named = {int(problem.split(":")[0].split()[1]) for problem in result.problems}
        assert named == set(bad)
    else:
        assert len(result) == len(values)


def _is_valid(value: Any) -> bool:
    try:
        DragonRecord.model_validate(value)
    except Exception:
        return False
    return isinstance(value, dict)


@FAST
@given(
    field=st.sampled_from(RECORD_FIELDS),
    value=json_values.filter(lambda v: not (isinstance(v, str) and v.strip())),
)
def test_a_record_with_one_broken_field_is_refused_naming_the_record_and_the_field(
    field: str, value: Any
) -> None:
    good, broken = valid_record("Good"), valid_record("Broken")
    broken[field] = value

    with pytest.raises(InvalidRecords) as caught:
        validate_records([good, broken, good])

    assert caught.value.total == 3
    assert all(problem.startswith(f"record 1: {field}") for problem in caught.value.problems)


@FAST
@given(st.lists(st.sampled_from(["good", "garbage", "deep", "number"]), min_size=2, max_size=8))
def test_ndjson_with_broken_lines_names_every_broken_line_and_accepts_nothing(kinds: list[str]) -> None:
    lines = {
        "good": json.dumps(valid_record()),
        "garbage": '{"dragon_name_str": ',
        "deep": '{"family_str": ' + deep_array(50_000) + "}",
        "number": "42",
    }

    result = outcome("\n".join(lines[kind] for kind in kinds))

    broken = {index + 1 for index, kind in enumerate(kinds) if kind in ("garbage", "deep")}
    if not broken and "number" not in kinds:
        assert len(result) == len(kinds)
        return
    assert isinstance(result, InvalidRecords)
    if broken:
        named = {int(problem.split(":")[0].split()[1]) for problem in result.problems}
        assert named == broken
    else:
        not_objects = {index for index, kind in enumerate(kinds) if kind == "number"}
        named = {int(problem.split(":")[0].split()[1]) for problem in result.problems}
        assert named == not_objects


@pytest.mark.parametrize(
    "text",
    [
        deep_array(100_000),
        '{"dragon_name_str": ' + deep_array(100_000) + "}",
        json.dumps(valid_record()) + "\n" + deep_array(100_000),
        "[" + json.dumps(valid_record()) + "," + deep_array(100_000) + "]",
    ],
    ids=["array", "object", "ndjson-line", "array-element"],
)
def test_a_record_file_nested_100000_levels_deep_is_refused_as_too_deep_not_a_recursion_error(
    text: str,
) -> None:
    with pytest.raises(InvalidRecords) as caught:
        load_records(io.StringIO(text))

    assert any("nested too deeply" in problem for problem in caught.value.problems)


@FAST
@given(
    field=st.sampled_from(RECORD_FIELDS), value=st.text(st.characters() | SURROGATES, min_size=1, max_size=12)
)
def test_every_accepted_record_can_be_written_as_utf8_and_every_refused_one_names_its_field(
    field: str, value: str
) -> None:
    record = valid_record()
    record[field] = value

    result = outcome(json.dumps([record]))

    if isinstance(result, InvalidRecords):
        assert all(problem.startswith(f"record 0: {field}: ") for problem in result.problems)
    else:
        (accepted,) = result
        assert json.dumps(accepted.body(), ensure_ascii=False).encode("utf-8")


def test_a_deep_but_decodable_value_in_a_field_is_refused_as_a_wrong_type() -> None:
    record = valid_record()
    record["family_str"] = json.loads(deep_array(500))

    with pytest.raises(InvalidRecords) as caught:
        validate_records([record])

    assert caught.value.problems == ["record 0: family_str: Input should be a valid string"]


def test_a_huge_record_file_of_valid_records_is_read_whole() -> None:
    records = [valid_record(f"Dragon {index}") for index in range(20_000)]

    loaded = load_records(io.StringIO(json.dumps(records)))

    assert [record.dragon_name_str for record in loaded] == [r["dragon_name_str"] for r in records]


def test_a_record_file_that_is_not_utf8_is_refused_with_its_path(tmp_path: Any) -> None:
    path = tmp_path / "records.json"
    path.write_bytes(b"\xff\xfe\x00garbage")

    with pytest.raises(InvalidRecords) as caught:
        load_records(path)

    assert caught.value.source == str(path)
    assert caught.value.problems[0].startswith("cannot read:")
