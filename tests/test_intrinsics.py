"""Intrinsic functions: each function on its own, the parser's complaints, and AWS's recordings.

The last part replays every AWS-recorded conformance case whose definition is a chain of
Pass states that only build their output with ``Parameters`` (literals, paths and intrinsic
calls): nothing else of the engine is needed to know what AWS answered for those.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.asl.errors import INTRINSIC_FAILURE, PathNotFound, StatesError
from orchestrator.asl.intrinsics import Call, Literal, PathArgument, evaluate, is_intrinsic, parse

CASES = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "cases"

DOCUMENT = {
    "name": "Arnav",
    "template": "Hello, my name is {}.",
    "numbers": [1, 2, 3, 4, 5, 6, 7, 8, 9],
    "object": {"Arg1": 1, "Arg2": []},
    "nested": {"list": [{"x": "first"}, {"x": "second"}]},
}


def resolve_in(document: Any, context: Any = None) -> Any:
    """A small path resolver: ``$``, ``$.a.b``, ``$.a[0]``, ``$['a']`` and ``$$...`` on a context."""

    def resolve(path: str) -> Any:
        if path.startswith("$$"):
            return _walk(context, path[2:], path)
        if path.startswith("$") and not path.startswith(("$.", "$[")) and path != "$":
            raise PathNotFound(path)  # workflow variables are the engine's business
        return _walk(document, path[1:], path)

    return resolve


def _walk(value: Any, steps: str, path: str) -> Any:
    for match in re.finditer(r"\.([^.\[]+)|\[(\d+)\]|\['([^']*)'\]", steps):
        key = match.group(1) or match.group(3)
        if key is not None and isinstance(value, dict) and key in value:
            value = value[key]
        elif match.group(2) is not None and isinstance(value, list) and int(match.group(2)) < len(value):
            value = value[int(match.group(2))]
        else:
            raise PathNotFound(path, value)
    return value


def run(expression: str, document: Any = DOCUMENT) -> Any:
    return evaluate(expression, resolve_in(document))


def failure(expression: str, document: Any = DOCUMENT) -> StatesError:
    with pytest.raises(StatesError) as raised:
        run(expression, document)
    return raised.value


def same_json(expected: Any, actual: Any) -> bool:
    """Equality of JSON values in which 1, 1.0 and true are three different values."""
    if type(expected) is not type(actual):
        return False
    if isinstance(expected, dict):
        return expected.keys() == actual.keys() and all(same_json(expected[k], actual[k]) for k in expected)
    if isinstance(expected, list):
        return len(expected) == len(actual) and all(map(same_json, expected, actual))
    return expected == actual


# --- recognising and parsing ------------------------------------------------------------


def test_a_states_call_is_an_intrinsic_and_a_path_is_not() -> None:
    assert is_intrinsic("States.Format('{}', $.a)")
    assert is_intrinsic("States.UUID()")
    assert not is_intrinsic("$.States.Format")
    assert not is_intrinsic("$$.Execution.Id")
    assert not is_intrinsic("$")


def test_parsing_keeps_literal_types_apart_and_reads_paths_and_nested_calls() -> None:
    call = parse("States.Array(1, 1.0, -2, 3e2, true, false, null, 'text', $.a[0], $$.Execution.Id, $var)")
    assert call.name == "States.Array"
    values = [argument.value for argument in call.arguments[:8] if isinstance(argument, Literal)]
    assert [type(value) for value in values] == [int, float, int, float, bool, bool, type(None), str]
    assert call.arguments[8:] == (
        PathArgument("$.a[0]"),
        PathArgument("$$.Execution.Id"),
        PathArgument("$var"),
    )
    nested = parse("States.Format('{}', States.ArrayLength($.a))").arguments[1]
    assert isinstance(nested, Call)
    assert nested.name == "States.ArrayLength"


def test_a_path_with_commas_inside_brackets_stays_one_argument() -> None:
    call = parse("States.Array($['a,b'], $.c)")
    assert call.arguments == (PathArgument("$['a,b']"), PathArgument("$.c"))


def test_parsed_calls_are_cached() -> None:
    assert parse("States.ArrayLength($.numbers)") is parse("States.ArrayLength($.numbers)")


@pytest.mark.parametrize(
    ("expression", "complaint"),
    [
        ("States.Nope($.a)", "unknown intrinsic function 'States.Nope' at position 0"),
        ("States.ArrayLength()", "States.ArrayLength takes 1 argument(s) but was given 0"),
        ("States.MathRandom(1)", "States.MathRandom takes 2 to 3 argument(s) but was given 1"),
        ("States.Format()", "States.Format takes at least 1 argument(s) but was given 0"),
        ("States.UUID(1)", "States.UUID takes 0 argument(s) but was given 1"),
        ("States.Format('{} and {}', $.a)", "States.Format has 2 placeholder(s) but 1 value(s)"),
        ("States.Array(States.Format('{}'))", "placeholder(s) but 0 value(s) at position 13"),
        ("States.Format(1, $.a)", "the format string of States.Format must be a string"),
        ("States.Array('open", "unterminated string literal at position 13"),
        ("States.Array('a\\n')", "invalid escape sequence"),
        ("States.Array(1 2)", "expected ',' or ')'"),
        ("States.Array(1) tail", "unexpected text after the closing parenthesis at position 16"),
        ("States.Array(yes)", "unexpected word 'yes'"),
        ("States.Array", "expected '(' after States.Array"),
    ],
)
def test_a_malformed_call_is_refused_with_the_problem_and_its_position(
    expression: str, complaint: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        parse(expression)


def test_evaluating_a_malformed_call_is_an_intrinsic_failure() -> None:
    assert failure("States.Nope()").error == INTRINSIC_FAILURE


def test_a_missing_path_argument_surfaces_as_path_not_found_for_the_caller_to_word() -> None:
    with pytest.raises(PathNotFound) as raised:
        run("States.Format('{}', $.missing)")
    assert raised.value.path == "$.missing"


# --- string literals and States.Format ----------------------------------------------------


def test_escaped_quote_braces_and_backslash_stand_for_themselves() -> None:
    assert run(r"States.Format('It\'s \{\} \\ {}', 'done')") == "It's {} \\ done"


def quoted(text: str) -> str:
    """Write text as an intrinsic string literal, escaping every reserved character."""
    for reserved in "\\'{}":
        text = text.replace(reserved, "\\" + reserved)
    return f"'{text}'"


@given(st.text())
def test_a_fully_escaped_literal_formats_to_exactly_its_text(text: str) -> None:
    assert run(f"States.Format({quoted(text)})") == text


def test_spaces_around_arguments_do_not_matter() -> None:
    assert run("States.Format( '{}-{}' ,  $.name ,States.ArrayLength( $.numbers ) )") == "Arnav-9"


def test_unescaped_braces_that_are_not_a_placeholder_stay_literal() -> None:
    assert run('States.StringToJson(\'{"a": {"b": 1}}\')') == {"a": {"b": 1}}


def test_format_fills_placeholders_in_order_from_literal_or_path_templates() -> None:
    assert run("States.Format('Hello, my name is {}.', $.name)") == "Hello, my name is Arnav."
    assert run("States.Format($.template, $.name)") == "Hello, my name is Arnav."


def test_format_writes_values_as_step_functions_does() -> None:
    assert run("States.Format('{} {} {} {} {}', null, 1, 1.1, true, $.object)") == (
        "null 1 1.1 true {Arg1=1, Arg2=[]}"
    )
    assert run("States.Format('{}', States.Array('a', 2, States.Array()))") == "[a, 2, []]"
    assert run("States.Format('{} {}', 1e20, 0.0001)") == "1.0E20 1.0E-4"


def test_format_reads_its_template_from_a_workflow_variable_as_plain_text() -> None:
    variables = {"$AnswerTemplate": "It's {}!"}
    values = {"$$.Map.Item.Value": "Pikachu"}

    def resolve(path: str) -> Any:
        return variables.get(path, values.get(path))

    assert evaluate("States.Format($AnswerTemplate, $$.Map.Item.Value)", resolve) == "It's Pikachu!"


def test_format_with_a_path_template_checks_the_placeholder_count_when_run() -> None:
    error = failure("States.Format($.template)")
    assert error.error == INTRINSIC_FAILURE
    assert "1 placeholder(s) but 0 value(s)" in (error.cause or "")


def test_format_refuses_a_template_that_is_not_a_string() -> None:
    assert failure("States.Format($.numbers, 1)").error == INTRINSIC_FAILURE


# --- JSON ---------------------------------------------------------------------------------


def test_json_to_string_writes_compact_json() -> None:
    assert run("States.JsonToString($.object)") == '{"Arg1":1,"Arg2":[]}'
    assert run("States.JsonToString(States.Array(1, 2.5, 'a\"b', null))") == '[1,2.5,"a\\"b",null]'
    assert run("States.JsonToString('é\n')") == '"é\\n"'


def test_string_to_json_parses_text_and_reads_blank_text_as_null() -> None:
    assert run("States.StringToJson('[1, 2.0, \"x\"]')") == [1, 2.0, "x"]
    assert run("States.StringToJson('   ')") is None
    assert same_json(run("States.StringToJson('-0')"), 0)


def test_string_to_json_refuses_text_that_is_not_json() -> None:
    for text in ["'{'", "'NaN'", "'[1,]'", "1"]:
        assert failure(f"States.StringToJson({text})").error == INTRINSIC_FAILURE


def test_json_merge_is_shallow_and_the_second_object_wins() -> None:
    document = {"a": {"x": {"k": 1}, "y": 2}, "b": {"x": {"j": 2}, "z": 3}}
    assert run("States.JsonMerge($.a, $.b, false)", document) == {"x": {"j": 2}, "y": 2, "z": 3}


def test_json_merge_accepts_an_object_parsed_from_a_literal_with_unescaped_braces() -> None:
    # As recorded by AWS: the literal's braces and quotes need no intrinsic escaping here.
    expression = (
        'States.JsonMerge(States.StringToJson(\'{"constant_in_literal": "false"}\'), '
        "$$.Execution.Input.input_field, false)"
    )
    context = {"Execution": {"Input": {"input_field": {"constant_input_field": "constant_value"}}}}
    merged = evaluate(expression, resolve_in({}, context))
    assert merged == {"constant_in_literal": "false", "constant_input_field": "constant_value"}


def test_json_merge_refuses_deep_merge_and_non_objects() -> None:
    assert "deep merging is not supported" in (
        failure("States.JsonMerge($.object, $.object, true)").cause or ""
    )
    assert failure("States.JsonMerge($.numbers, $.object, false)").error == INTRINSIC_FAILURE
    assert failure("States.JsonMerge($.object, $.object, 'false')").error == INTRINSIC_FAILURE


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


@given(JSON_VALUES)
def test_json_to_string_then_string_to_json_gives_the_value_back(value: Any) -> None:
    text = evaluate("States.JsonToString($)", lambda _path: value)
    assert same_json(json.loads(text), value)
    assert same_json(evaluate("States.StringToJson($)", lambda _path: text), value)


# --- arrays -------------------------------------------------------------------------------


def test_array_collects_its_arguments_in_order() -> None:
    assert run("States.Array()") == []
    assert run("States.Array($.name, 1, States.Array(true))") == ["Arnav", 1, [True]]


def test_array_partition_cuts_chunks_with_a_shorter_last_one() -> None:
    assert run("States.ArrayPartition($.numbers, 4)") == [[1, 2, 3, 4], [5, 6, 7, 8], [9]]
    assert run("States.ArrayPartition(States.Array(), 2)") == []


def test_array_partition_refuses_a_chunk_size_below_one() -> None:
    assert "greater than 0" in (failure("States.ArrayPartition($.numbers, 0)").cause or "")
    assert "greater than 0" in (failure("States.ArrayPartition($.numbers, 0.4)").cause or "")
    endless = {"numbers": [1], "size": 1e400}
    assert "finite" in (failure("States.ArrayPartition($.numbers, $.size)", endless).cause or "")


def test_array_partition_rounds_a_chunk_size_that_is_not_an_integer() -> None:
    """Developer Guide, intrinsic-functions.html, States.ArrayPartition, "Input validation": "If you
    specify a non-integer value for the second argument, Step Functions will round it off to the
    nearest integer." Halves round up, as States.MathAdd's arguments do."""
    assert run("States.ArrayPartition($.numbers, 1.5)") == [[1, 2], [3, 4], [5, 6], [7, 8], [9]]
    assert run("States.ArrayPartition($.numbers, 3.49)") == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]


@given(st.lists(st.integers(), max_size=30), st.integers(min_value=1, max_value=8))
def test_partitions_join_back_into_the_array(items: list[int], size: int) -> None:
    chunks = evaluate("States.ArrayPartition($.items, $.size)", resolve_in({"items": items, "size": size}))
    assert [item for chunk in chunks for item in chunk] == items
    assert all(len(chunk) == size for chunk in chunks[:-1])


def test_array_contains_compares_json_values_not_python_ones() -> None:
    document = {"items": [[1, 2, 3], {"a": [1]}, True, 2.5]}
    assert run("States.ArrayContains($.items, States.Array(1, 2, 3))", document) is True
    assert run("States.ArrayContains($.items, States.StringToJson('{\"a\": [1]}'))", document) is True
    assert run("States.ArrayContains($.items, 1)", document) is False
    assert run("States.ArrayContains($.items, 2.5)", document) is True
    assert run("States.ArrayContains(States.Array(), null)") is False


def test_array_range_includes_the_last_value_when_the_step_lands_on_it() -> None:
    assert run("States.ArrayRange(1, 9, 2)") == [1, 3, 5, 7, 9]
    assert run("States.ArrayRange(0, 10, 3)") == [0, 3, 6, 9]
    assert run("States.ArrayRange(5, 1, -2)") == [5, 3, 1]
    assert run("States.ArrayRange(1, 0, 1)") == []


def test_array_range_refuses_a_zero_step_and_more_than_1000_items() -> None:
    assert "must not be 0" in (failure("States.ArrayRange(1, 9, 0)").cause or "")
    assert "must not be 0" in (failure("States.ArrayRange(1, 9, 0.4)").cause or "")
    assert len(run("States.ArrayRange(1, 1000, 1)")) == 1000
    assert len(run("States.ArrayRange(1000, 1, -1)")) == 1000
    assert "more than 1000" in (failure("States.ArrayRange(1000, 0, -1)").cause or "")
    assert "more than 1000" in (failure("States.ArrayRange(0, 1e20, 1)").cause or "")
    assert "more than 1000" in (failure("States.ArrayRange(0, 1000, 1)").cause or "")


def test_array_range_rounds_arguments_that_are_not_integers() -> None:
    """Developer Guide, intrinsic-functions.html, States.ArrayRange, "Input validation": "If you
    specify a non-integer value for any of the arguments, Step Functions will round it off to
    the nearest integer." Halves round up, as States.MathAdd's arguments do."""
    assert run("States.ArrayRange(1.5, 9, 2)") == [2, 4, 6, 8]
    assert run("States.ArrayRange(1, 8.6, 2.5)") == [1, 4, 7]
    assert run("States.ArrayRange(-1.5, 1.4, 1)") == [-1, 0, 1]
    assert "finite" in (failure("States.ArrayRange(0, $.end, 1)", {"end": 1e400}).cause or "")


def test_array_get_item_reads_by_zero_based_index_within_bounds() -> None:
    assert run("States.ArrayGetItem($.numbers, 5)") == 6
    assert run("States.ArrayGetItem($.nested.list, 1)") == {"x": "second"}
    assert "out of bounds" in (failure("States.ArrayGetItem($.numbers, 9)").cause or "")
    assert failure("States.ArrayGetItem($.numbers, -1)").error == INTRINSIC_FAILURE


def test_array_length_counts_items_and_refuses_non_arrays() -> None:
    assert run("States.ArrayLength($.numbers)") == 9
    assert "must be an array, not string" in (failure("States.ArrayLength($.name)").cause or "")


def test_array_unique_keeps_first_occurrences_and_tells_1_from_1_0_and_true() -> None:
    document = {"items": [1, 1, 1.0, True, "1", [1], [1], {"a": 1, "b": 2}, {"b": 2, "a": 1}, None, None]}
    assert same_json(
        run("States.ArrayUnique($.items)", document),
        [1, 1.0, True, "1", [1], {"a": 1, "b": 2}, None],
    )


# --- encoding, hashing, maths, strings, ids -----------------------------------------------


def test_base64_round_trips_utf8_text() -> None:
    assert run("States.Base64Encode('Data to encode')") == "RGF0YSB0byBlbmNvZGU="
    assert run("States.Base64Decode(States.Base64Encode('héllo wörld'))") == "héllo wörld"


def test_base64_decode_refuses_text_that_is_not_base64() -> None:
    assert failure("States.Base64Decode('not base64!')").error == INTRINSIC_FAILURE
    assert failure("States.Base64Encode(1)").error == INTRINSIC_FAILURE


def test_base64_refuses_input_over_10000_characters() -> None:
    assert failure("States.Base64Encode($.text)", {"text": "a" * 10_001}).error == INTRINSIC_FAILURE


@pytest.mark.parametrize(
    ("algorithm", "digest"),
    [
        ("MD5", "812f45842bc6d66ee14572ce20db8e86"),
        ("SHA-1", "aaff4a450a104cd177d28d18d74485e8cae074b7"),
        ("SHA-256", "b4a697a057313163aee33cd8d40c66e9f0f177e00cac2de32475ffff6169c3e3"),
    ],
)
def test_hash_gives_the_lowercase_hex_digest(algorithm: str, digest: str) -> None:
    assert run(f"States.Hash('input data', '{algorithm}')") == digest


def test_hash_refuses_an_unknown_algorithm() -> None:
    assert "'SHA-3' is not one of MD5, SHA-1" in (failure("States.Hash('x', 'SHA-3')").cause or "")


def test_math_add_rounds_each_number_half_up_before_adding() -> None:
    assert run("States.MathAdd(-9, 3)") == -6
    assert run("States.MathAdd(1.49, 1.5)") == 3
    assert run("States.MathAdd(-1.5, -1.51)") == -3
    assert run("States.MathAdd(-2.5, 0)") == -2
    assert type(run("States.MathAdd(0.5, 0)")) is int


def test_math_add_refuses_what_is_not_a_number() -> None:
    assert failure("States.MathAdd('1', 2)").error == INTRINSIC_FAILURE
    assert failure("States.MathAdd(true, 2)").error == INTRINSIC_FAILURE


def test_math_random_stays_in_range_and_repeats_for_a_seed() -> None:
    values = {run("States.MathRandom(1, 5)") for _ in range(200)}
    assert values <= {1, 2, 3, 4}
    assert run("States.MathRandom(0, 999, 3)") == run("States.MathRandom(0, 999, 3)")
    assert failure("States.MathRandom(5, 5)").error == INTRINSIC_FAILURE
    assert "finite" in (failure("States.MathRandom($.start, 5)", {"start": -1e400}).cause or "")


def test_string_split_splits_on_any_delimiter_character_and_drops_empty_parts() -> None:
    assert run("States.StringSplit('1,2,,3', ',')") == ["1", "2", "3"]
    assert run("States.StringSplit('This.is+a,test=string', '.+,=')") == ["This", "is", "a", "test", "string"]
    assert run("States.StringSplit('', ',')") == []


def test_uuid_is_a_fresh_version_4_uuid() -> None:
    first, second = run("States.UUID()"), run("States.UUID()")
    assert uuid.UUID(first).version == 4
    assert first != second


def test_nested_calls_feed_each_other() -> None:
    document = {"arn": "arn:aws:imagebuilder:us-east-1:1:image/name/1.2.3"}
    expression = (
        "States.Format('{}.{}', States.ArrayGetItem(States.StringSplit(States.ArrayGetItem("
        "States.StringSplit($.arn, '/'), 2), '.'), 0), States.ArrayGetItem(States.StringSplit("
        "States.ArrayGetItem(States.StringSplit($.arn, '/'), 2), '.'), 1))"
    )
    assert run(expression, document) == "1.2"


# --- AWS-recorded conformance cases -------------------------------------------------------

# Pass-state fields this replay knows how to apply; a case using any other field needs more
# of the engine than the intrinsics, so it is left to the engine's own tests.
PASS_FIELDS = {"Type", "Parameters", "Next", "End", "Comment"}


def _parameter_values(template: Any) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    if isinstance(template, dict):
        for key, value in template.items():
            found.append((key, value))
            found.extend(_parameter_values(value))
    elif isinstance(template, list):
        for item in template:
            found.extend(_parameter_values(item))
    return found


def _is_replayable(case: dict[str, Any]) -> bool:
    definition = case["definition"]
    states = definition.get("States", {})
    if "QueryLanguage" in definition or not states:
        return False
    if any(state.get("Type") != "Pass" or set(state) - PASS_FIELDS for state in states.values()):
        return False
    fields = [pair for state in states.values() for pair in _parameter_values(state.get("Parameters"))]
    dynamic = [value for key, value in fields if key.endswith(".$")]
    return any(isinstance(value, str) and is_intrinsic(value) for value in dynamic)


def _replayable_cases() -> list[Path]:
    if not CASES.is_dir():
        return []
    return sorted(path for path in CASES.glob("*/*.json") if _is_replayable(json.loads(path.read_text())))


def _build_parameters(template: Any, resolve: Any) -> Any:
    if isinstance(template, list):
        return [_build_parameters(item, resolve) for item in template]
    if not isinstance(template, dict):
        return template
    built = {}
    for key, value in template.items():
        if key.endswith(".$"):
            built[key[:-2]] = evaluate(value, resolve) if is_intrinsic(value) else resolve(value)
        else:
            built[key] = _build_parameters(value, resolve)
    return built


def _context(case: dict[str, Any]) -> dict[str, Any]:
    arn = "arn:aws:states:us-east-1:111111111111"
    return {
        "Execution": {"Id": f"{arn}:execution:machine-name:run-1", "Input": case["input"], "Name": "run-1"},
        "StateMachine": {"Id": f"{arn}:stateMachine:machine-name", "Name": "machine-name"},
    }


def _replay(case: dict[str, Any]) -> Any:
    definition, context = case["definition"], _context(case)
    data, name = case["input"], definition["StartAt"]
    while True:
        state = definition["States"][name]
        if "Parameters" in state:
            data = _build_parameters(state["Parameters"], resolve_in(data, context))
        if state.get("End"):
            return data
        name = state["Next"]


def _matches(expected: Any, actual: Any, where: str, case: dict[str, Any]) -> bool:
    if where in set(case.get("nondeterministic") or []):
        pattern = (case.get("patterns") or {}).get(where)
        return pattern is None or re.fullmatch(pattern, str(actual)) is not None
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(
            _matches(expected[key], actual[key], f"{where}/{key}", case) for key in expected
        )
    return same_json(expected, actual)


REPLAYABLE = _replayable_cases()
needs_cases = pytest.mark.skipif(
    not CASES.is_dir(), reason=f"the AWS-recorded conformance cases are not present at {CASES}"
)


@needs_cases
def test_the_replay_covers_the_recorded_intrinsic_cases() -> None:
    covered = {path.parent.name for path in REPLAYABLE}
    assert "intrinsic_functions" in covered
    assert len(REPLAYABLE) >= 90


@needs_cases
@pytest.mark.parametrize("path", REPLAYABLE, ids=[path.stem for path in REPLAYABLE])
def test_intrinsics_give_what_aws_recorded(path: Path) -> None:
    case = json.loads(path.read_text())
    expected = case["expected"]
    if expected["status"] == "SUCCEEDED":
        assert _matches(expected["output"], _replay(case), "/output", case)
        return
    with pytest.raises(StatesError) as raised:
        _replay(case)
    assert raised.value.error == expected["error"]
    assert (expected["cause"] or "").endswith(raised.value.cause or "")
