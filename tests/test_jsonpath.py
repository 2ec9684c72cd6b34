"""JSONPath with AWS Step Functions' semantics: what each path selects, and how it fails."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.asl.errors import PathNotFound
from orchestrator.asl.jsonpath import (
    PathSyntaxError,
    UnmatchedPath,
    check_path,
    check_reference_path,
    check_result_path,
    compile_path,
    is_definite,
    query,
    render_json,
)

STORE: dict[str, Any] = {
    "store": {
        "book": [
            {"category": "reference", "author": "Rees", "title": "Sayings", "price": 8.95},
            {"category": "fiction", "author": "Waugh", "title": "Sword", "price": 12.99},
            {"category": "fiction", "author": "Melville", "title": "Moby", "isbn": "0-553", "price": 8.99},
            {"category": "fiction", "author": "Tolkien", "title": "Rings", "isbn": "0-395", "price": 22.99},
        ],
        "bicycle": {"color": "red", "price": 19.95},
    },
    "odd key": 1,
    "flags": {"on": True, "off": False, "none": None},
}


def titles(books: list[dict[str, Any]]) -> list[str]:
    return [book["title"] for book in books]


# ---------------------------------------------------------------------------- definite paths


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.store.bicycle.color", "red"),
        ("$['store']['bicycle']['color']", "red"),
        ('$["store"]["bicycle"].color', "red"),
        ("$.store.book[0].title", "Sayings"),
        ("$.store.book[-1].title", "Rings"),
        ("$['odd key']", 1),
        ("$.flags.none", None),
        ("$.flags.off", False),
    ],
)
def test_a_definite_path_returns_the_value_it_selects(path: str, expected: Any) -> None:
    assert query(path, STORE) == expected
    assert is_definite(path)


def test_the_root_path_returns_the_whole_document() -> None:
    assert query("$", STORE) is STORE
    assert query("$", None) is None


def test_a_name_with_hyphens_works_in_dot_notation() -> None:
    assert query("$.Execution.Input.input-value", {"Execution": {"Input": {"input-value": 0}}}) == 0


def test_a_quoted_name_keeps_its_backslashes_as_aws_does() -> None:
    key = 'Test\\""Name"'
    assert query('$[\'Test\\""Name"\']', {key: "found"}) == "found"


def test_a_missing_last_member_reports_no_results_for_the_whole_path() -> None:
    with pytest.raises(UnmatchedPath) as missing:
        query("$.store.bicycle.size", STORE)
    assert missing.value.reason == "No results for path: $['store']['bicycle']['size']"
    assert isinstance(missing.value, PathNotFound)


def test_a_missing_member_on_the_way_reports_the_missing_property() -> None:
    with pytest.raises(UnmatchedPath) as missing:
        query("$.no.such.result.path", {})
    assert missing.value.reason == "Missing property in path $['no']"


def test_an_index_past_the_end_selects_nothing() -> None:
    with pytest.raises(UnmatchedPath) as missing:
        query("$.store.book[10]", STORE)
    assert missing.value.reason == "No results for path: $['store']['book'][10]"


def test_a_name_never_indexes_an_array_or_a_string() -> None:
    with pytest.raises(PathNotFound):
        query("$.store.book.title", STORE)
    with pytest.raises(PathNotFound):
        query("$.store.bicycle.color[0]", STORE)


# ---------------------------------------------------------------------------- indefinite paths


def test_a_wildcard_on_an_array_lists_its_elements() -> None:
    assert query("$.store.book[*].author", STORE) == ["Rees", "Waugh", "Melville", "Tolkien"]
    assert not is_definite("$.store.book[*].author")


def test_a_wildcard_on_an_object_lists_its_member_values_in_order() -> None:
    assert query("$.store.bicycle.*", STORE) == ["red", 19.95]
    assert query("$.store.bicycle[*]", STORE) == ["red", 19.95]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.store.book[1:3]", ["Sword", "Moby"]),
        ("$.store.book[:2]", ["Sayings", "Sword"]),
        ("$.store.book[2:]", ["Moby", "Rings"]),
        ("$.store.book[-2:]", ["Moby", "Rings"]),
        ("$.store.book[::2]", ["Sayings", "Moby"]),
        ("$.store.book[::-1]", ["Rings", "Moby", "Sword", "Sayings"]),
        ("$.store.book[0,3]", ["Sayings", "Rings"]),
    ],
)
def test_slices_and_index_unions_list_the_elements_they_pick(path: str, expected: list[str]) -> None:
    assert titles(query(path, STORE)) == expected


def test_a_name_union_at_the_end_merges_the_members_present_into_one_object() -> None:
    assert query("$.store.bicycle['color','price','size']", STORE) == {"color": "red", "price": 19.95}
    assert is_definite("$['a','b']")


def test_a_name_union_on_the_way_lists_each_member_value() -> None:
    assert query("$['store']['bicycle','book'].color", STORE) == ["red"]


def test_a_deep_scan_finds_every_matching_member_in_document_order() -> None:
    assert query("$..price", STORE) == [8.95, 12.99, 8.99, 22.99, 19.95]
    assert query("$..book[0].title", STORE) == ["Sayings"]


def test_an_indefinite_path_that_matches_nothing_gives_an_empty_list() -> None:
    for path in ("$.items[*]", "$.item.items[1:5].itemValue", "$[*]", "$..nothing", "$.a[?(@.x)]"):
        assert query(path, {}) == []


# ---------------------------------------------------------------------------- filters


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.store.book[?(@.price < 10)]", ["Sayings", "Moby"]),
        ("$.store.book[?(@.price >= 12.99)]", ["Sword", "Rings"]),
        ("$.store.book[?(@.category == 'reference')]", ["Sayings"]),
        ('$.store.book[?(@.category != "fiction")]', ["Sayings"]),
        ("$.store.book[?(@.isbn)]", ["Moby", "Rings"]),
        ("$.store.book[?(!@.isbn)]", ["Sayings", "Sword"]),
        ("$.store.book[?(@.price < 10 && @.category == 'fiction')]", ["Moby"]),
        ("$.store.book[?(@.price < 9 || @.author == 'Tolkien')]", ["Sayings", "Moby", "Rings"]),
        ("$.store.book[?((@.price > 20 || @.price < 9) && @.isbn)]", ["Moby", "Rings"]),
        ("$.store.book[?(@.price < $.store.bicycle.price)]", ["Sayings", "Sword", "Moby"]),
        ("$.store.book[?(@['title'] == 'Sword')]", ["Sword"]),
    ],
)
def test_a_filter_keeps_the_elements_that_satisfy_it(path: str, expected: list[str]) -> None:
    assert titles(query(path, STORE)) == expected


def test_a_filter_compares_numbers_with_numbers_and_never_with_booleans() -> None:
    items = [{"v": 1}, {"v": 1.0}, {"v": True}, {"v": "1"}]
    assert query("$[?(@.v == 1)]", items) == [{"v": 1}, {"v": 1.0}]
    assert query("$[?(@.v == true)]", items) == [{"v": True}]


def test_a_filter_on_a_member_that_is_missing_matches_only_inequality() -> None:
    items = [{"v": 1}, {}]
    assert query("$[?(@.v > 0)]", items) == [{"v": 1}]
    assert query("$[?(@.v != 1)]", items) == [{}]


def test_a_filter_followed_by_a_name_selects_from_each_match() -> None:
    assert query("$.store.book[?(@.price > 20)].author", STORE) == ["Tolkien"]


# ---------------------------------------------------------------------------- length()


def test_length_counts_the_elements_of_an_array_or_the_members_of_an_object() -> None:
    assert query("$.store.book.length()", STORE) == 4
    assert query("$.store.bicycle.length()", STORE) == 2
    assert is_definite("$.store.book.length()")


def test_length_may_be_used_inside_a_filter() -> None:
    rows = [[1, 2], [1, 2, 3]]
    assert query("$[?(@.length() == 3)]", rows) == [[1, 2, 3]]


# ---------------------------------------------------------------------------- compiling and checking


def test_a_path_is_compiled_once() -> None:
    assert compile_path("$.store.book[0]") is compile_path("$.store.book[0]")


def test_roots_say_which_document_a_path_reads() -> None:
    assert compile_path("$.a").root == "$"
    assert compile_path("$$.Execution.Id").root == "$$"
    variable = compile_path("$order.items[0]")
    assert (variable.root, variable.variable) == ("var", "order")


@pytest.mark.parametrize(
    "path",
    ["$", "$.a", "$$", "$$.Map.Item.Value", "$var", "$var.a[0]", "$.a[?(@.b < 1)]", "$..a", "$.a.length()"],
)
def test_valid_paths_pass_the_check(path: str) -> None:
    assert check_path(path) is None


@pytest.mark.parametrize(
    "path", ["a.b", "", "$.a[", "$.a[x]", "$.a..", "$.a b", "$.a.sum()", "$.a[?(@.b ~ 1)]", "$.a[1:2:0]"]
)
def test_invalid_paths_are_reported_with_what_is_wrong(path: str) -> None:
    problem = check_path(path)
    assert problem
    with pytest.raises(PathSyntaxError):
        compile_path(path)


def test_reference_paths_allow_only_names_and_indexes() -> None:
    assert check_reference_path("$.a['b'][0]") is None
    assert check_reference_path("$$.Execution.Input") is None
    assert check_reference_path("$var.x") is None
    for path in ("$.a[*]", "$..a", "$.a[0:1]", "$.a[0,1]", "$.a[?(@.x)]", "$.a.length()"):
        assert check_reference_path(path), path


def test_result_paths_must_point_into_the_state_input() -> None:
    assert check_result_path("$.result") is None
    assert check_result_path("$$.Execution")
    assert check_result_path("$var")


def test_json_in_causes_is_compact_and_keeps_key_order() -> None:
    assert render_json({"b": 1, "a": [1, "é"]}) == '{"b":1,"a":[1,"é"]}'


# ---------------------------------------------------------------------------- properties

JSON_KEYS = st.text(
    alphabet=st.characters(categories=("L", "N"), include_characters="_-"), min_size=1, max_size=6
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(JSON_KEYS, children, max_size=4),
    max_leaves=20,
)


def _walks(document: Any) -> st.SearchStrategy[list[str | int]]:
    """Key sequences that exist in ``document``."""
    if isinstance(document, dict) and document:
        return st.sampled_from(sorted(document)).flatmap(
            lambda key: st.just([key]) | _walks(document[key]).map(lambda rest: [key, *rest])
        )
    if isinstance(document, list) and document:
        return st.integers(-len(document), len(document) - 1).flatmap(
            lambda index: st.just([index]) | _walks(document[index]).map(lambda rest: [index, *rest])
        )
    return st.just([])


def _bracket_path(keys: list[str | int]) -> str:
    return "$" + "".join(f"['{key}']" if isinstance(key, str) else f"[{key}]" for key in keys)


@given(st.data())
def test_a_definite_path_selects_exactly_what_direct_indexing_reaches(data: st.DataObject) -> None:
    document = data.draw(JSON_VALUES)
    keys = data.draw(_walks(document))
    expected = document
    for key in keys:
        expected = expected[key]
    assert query(_bracket_path(keys), document) == expected


@given(JSON_VALUES)
def test_a_deep_wildcard_scan_visits_every_value_below_the_root(document: Any) -> None:
    def count(node: Any) -> int:
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
        return sum(1 + count(child) for child in children)

    assert len(query("$..*", document)) == count(document)
