"""DragonRecord and load_records: the course's records pass as they are, nonsense is named and refused."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from orchestrator import dragon_record
from producer.records import DragonRecord, InvalidRecords, load_records, parse_text, validate_records

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "producer" / "data"
AWS_RECORDS = ROOT.parent / "shared" / "reference" / "aws-dragons" / "dragon_stats_one.json"

GOOD = {
    "dragon_name_str": "Ashgrave",
    "description_str": "Breathes a slow blue flame.",
    "family_str": "red",
    "location_city_str": "portland",
    "location_state_str": "oregon",
    "location_country_str": "usa",
    "location_neighborhood_str": "alberta arts district",
}


@pytest.mark.skipif(not AWS_RECORDS.exists(), reason=f"reference data not found at {AWS_RECORDS}")
def test_all_25_records_of_the_aws_course_validate_unchanged() -> None:
    raw = json.loads(AWS_RECORDS.read_text())
    records = load_records(AWS_RECORDS)
    assert len(records) == 25
    assert [record.body() for record in records] == raw


def test_our_sample_data_set_has_at_least_50_distinct_valid_dragons() -> None:
    records = load_records(DATA / "dragons.json")
    assert len(records) >= 50
    assert len({record.dragon_name_str for record in records}) == len(records)
    assert len({record.family_str for record in records}) >= 5
    assert len({record.location_country_str for record in records}) >= 5


def test_demo_file_has_25_records_with_5_repeats_of_earlier_names() -> None:
    names = [record.dragon_name_str for record in load_records(DATA / "demo25.json")]
    assert len(names) == 25
    assert len(set(names)) == 20
    for index, name in enumerate(names):
        if names.index(name) != index:
            assert index > names.index(name)


def test_optional_course_fields_are_accepted_and_kept() -> None:
    record = DragonRecord.model_validate(
        {**GOOD, "reportingPhoneNumber": "+15035550143", "confirmationRequired": True}
    )
    assert record.body()["confirmationRequired"] is True
    assert "reportingPhoneNumber" not in DragonRecord.model_validate(GOOD).body()


def test_values_are_kept_as_given_including_trailing_spaces() -> None:
    record = DragonRecord.model_validate({**GOOD, "description_str": "A judge among dragons. "})
    assert record.description_str == "A judge among dragons. "


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"dragon_name_str": None}, "record 0: dragon_name_str: Input should be a valid string"),
        ({"dragon_name_str": ""}, "record 0: dragon_name_str: Value error, must not be empty"),
        ({"dragon_name_str": "   "}, "record 0: dragon_name_str: Value error, must not be empty"),
        ({"family_str": 7}, "record 0: family_str: Input should be a valid string"),
        ({"confirmationRequired": "yes"}, "record 0: confirmationRequired: Input should be a valid boolean"),
        ({"reportingPhonenumber": "555"}, "record 0: reportingPhonenumber: unknown field"),
        (
            {"dragon_name_str": "Ash\ud800"},
            "record 0: dragon_name_str: Value error, holds a lone surrogate \\ud800 at character 3",
        ),
        (
            {"reportingPhoneNumber": "\udfff"},
            "record 0: reportingPhoneNumber: Value error, holds a lone surrogate \\udfff at character 0",
        ),
    ],
)
def test_a_bad_field_is_refused_with_index_and_field(change: dict, expected: str) -> None:
    with pytest.raises(InvalidRecords) as caught:
        validate_records([{**GOOD, **change}])
    assert caught.value.problems[0].startswith(expected)


def test_a_lone_surrogate_from_a_json_escape_is_refused_with_the_record_and_field() -> None:
    # Half of the pair "\ud83d\udc09" (a dragon emoji), as a tool that cut a string mid-pair writes it.
    ndjson = json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "family_str": "red \ud83d"})

    with pytest.raises(InvalidRecords) as caught:
        load_records(io.StringIO(ndjson))

    assert caught.value.problems == [
        "record 1: family_str: Value error, holds a lone surrogate \\ud83d at character 4, which is not "
        "text (a JSON \\uXXXX escape of half a character pair); fix how the file was written"
    ]


def test_text_beyond_the_basic_plane_and_bidi_characters_are_kept_as_given() -> None:
    # Valid text: refused only where it is shown, by escaping it (see producer.cli.views).
    name = json.loads('"\\ud83d\\udc09 \\u202eSmaug"')  # a JSON escape of a pair decodes to one character
    record = DragonRecord.model_validate({**GOOD, "dragon_name_str": name})
    assert record.dragon_name_str == "\U0001f409 \u202eSmaug"


def test_every_bad_record_is_listed_not_just_the_first() -> None:
    missing_name = {k: v for k, v in GOOD.items() if k != "dragon_name_str"}
    raw = [GOOD, GOOD, GOOD, missing_name, "a string", {**GOOD, "location_city_str": ""}]
    with pytest.raises(InvalidRecords) as caught:
        validate_records(raw, "dragons.json")
    problems = caught.value.problems
    assert problems[0] == "record 3: dragon_name_str: Field required"
    assert problems[1] == "record 4: (record): expected a JSON object, got str"
    assert problems[2].startswith("record 5: location_city_str:")
    assert "dragons.json: 3 problem(s) of 6, nothing enqueued" in str(caught.value)


def test_ndjson_and_a_single_object_and_stdin_style_streams_are_read() -> None:
    ndjson = "\n".join(json.dumps({**GOOD, "dragon_name_str": f"D{i}"}) for i in range(3)) + "\n\n"
    assert [r.dragon_name_str for r in load_records(io.StringIO(ndjson))] == ["D0", "D1", "D2"]
    assert len(load_records(io.StringIO(json.dumps(GOOD, indent=2)))) == 1


def test_broken_json_names_its_line() -> None:
    with pytest.raises(InvalidRecords) as caught:
        parse_text(json.dumps(GOOD) + "\n{not json\n")
    assert caught.value.problems[0].startswith("line 2: invalid JSON")


def test_empty_input_and_a_missing_file_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidRecords, match="no records"):
        load_records(io.StringIO("  \n"))
    with pytest.raises(InvalidRecords, match="no such file"):
        load_records(tmp_path / "absent.json")


def test_the_model_accepts_exactly_the_fields_the_worker_stores() -> None:
    assert set(DragonRecord.model_fields) == set(dragon_record.ALL_FIELDS)
    required = {name for name, field in DragonRecord.model_fields.items() if field.is_required()}
    assert required == set(dragon_record.REQUIRED_FIELDS)
