"""Choice rules compiled at parse time decide exactly as the rules read afresh do, errors included."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.asl.choice import COMPARISONS, PATH_COMPARISONS, TYPE_TESTS, matches
from orchestrator.asl.choice_rules import compile_rule
from orchestrator.asl.errors import StatesError
from orchestrator.asl.payload import Scope, resolve_path

PATHS = ["$.a", "$.b", "$.nested.c", "$.missing", "$.list[0]", "$$.Execution.Name", "$seen"]
CONTEXT = {"Execution": {"Name": "run-1"}}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(-5, 5, allow_nan=False)
    | st.sampled_from(["x", "abc", "a*c", "2024-01-01T00:00:00Z", "2024-01-02T00:00:00.5+01:00", ""])
)


@st.composite
def comparisons(draw: Any) -> dict[str, Any]:
    operator = draw(st.sampled_from(sorted([*COMPARISONS, *PATH_COMPARISONS, *TYPE_TESTS, "IsPresent"])))
    if operator in PATH_COMPARISONS:
        operand = draw(st.sampled_from(PATHS))
    elif operator in TYPE_TESTS or operator == "IsPresent":
        operand = draw(st.booleans() | scalars)
    else:
        operand = draw(scalars)
    return {"Variable": draw(st.sampled_from(PATHS)), operator: operand, "Next": "N"}


rules = st.recursive(
    comparisons(),
    lambda inner: (
        st.builds(lambda rules: {"And": rules}, st.lists(inner, min_size=1, max_size=3))
        | st.builds(lambda rules: {"Or": rules}, st.lists(inner, min_size=1, max_size=3))
        | st.builds(lambda rule: {"Not": rule}, inner)
    ),
    max_leaves=5,
)
documents = st.fixed_dictionaries(
    {},
    optional={
        "a": scalars,
        "b": scalars,
        "nested": st.fixed_dictionaries({}, optional={"c": scalars}),
        "list": st.lists(scalars, max_size=2),
    },
)


def outcome(decide: Any) -> tuple[str, Any]:
    try:
        return "decided", decide()
    except StatesError as failure:
        return "failed", (failure.error, failure.cause)


@settings(max_examples=400)
@given(rule=rules, document=documents, variables=st.fixed_dictionaries({}, optional={"seen": scalars}))
def test_a_compiled_rule_decides_as_the_rule_read_afresh(
    rule: dict[str, Any], document: dict[str, Any], variables: dict[str, Any]
) -> None:
    scope = Scope(document, CONTEXT, variables)
    compiled = outcome(lambda: compile_rule(rule)(scope))
    read_afresh = outcome(lambda: matches(rule, lambda path: resolve_path(path, scope)))
    assert compiled == read_afresh
