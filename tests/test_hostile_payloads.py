"""Hostile paths, intrinsic calls, JSONata text and payloads: a documented error or a value, never a crash.

Also the 256 KiB data limit, and that no resource string makes a worker run anything a
worker did not register.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.asl import intrinsics, jsonpath
from orchestrator.asl.definition import StateMachine
from orchestrator.asl.errors import PathNotFound, StatesError
from orchestrator.asl.query_jsonata import compile_expression, evaluate
from orchestrator.asl.task_state import PAYLOAD_LIMIT_BYTES
from orchestrator.local import LocalRunner
from orchestrator.runtime.client import Client
from orchestrator.settings import Settings
from worker.entry import carry_out
from worker.registry import FunctionRegistry

FAST = settings(max_examples=200, deadline=None)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=15,
)
path_pieces = st.sampled_from(
    ["$", "$$", "@", ".", "..", "a", "*", "[", "]", "0", "-1", ":", ",", "'", "?(", ")", "@.a", "==", "&&",
     "||", "!", "length()", " ", "\\", '"', "b", "[?(@.a > 1)]", "['x']"]
)  # fmt: skip
path_like = st.lists(path_pieces, max_size=12).map("".join) | st.text(max_size=30)
intrinsic_pieces = st.sampled_from(
    ["States.", "Format", "Array", "StringToJson", "JsonToString", "MathAdd", "ArrayRange", "Hash", "(", ")",
     ",", "'", "{}", "\\", "$", "$.a", "1", "-2.5", "null", "true", " ", "States.Array(", "'SHA-1'"]
)  # fmt: skip
intrinsic_like = st.lists(intrinsic_pieces, max_size=14).map(lambda pieces: "States." + "".join(pieces))
jsonata_pieces = st.sampled_from(
    ["$states.input", "$", "(", ")", "[", "]", "{", "}", ".", "a", "1", "+", "&", ":", ",", "'x'", '"y"',
     "$parse(", "$string(", "$split(", "$count(", "$sum(", "function($x){$x}", "?", ";", "**", "..", " "]
)  # fmt: skip
jsonata_like = st.lists(jsonata_pieces, max_size=14).map("".join)


def deep_list(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def resolver(document: Any) -> Any:
    def resolve(path: str) -> Any:
        return jsonpath.query(path, document)

    return resolve


@FAST
@given(path=path_like, document=json_values)
def test_any_path_text_is_checked_and_queried_with_only_documented_errors(path: str, document: Any) -> None:
    problem = jsonpath.check_path(path)
    assert problem is None or isinstance(problem, str)
    with contextlib.suppress(jsonpath.PathSyntaxError, PathNotFound):
        jsonpath.query(path, document)


@pytest.mark.parametrize(
    "path",
    ["$[?(" + "(" * 5000 + "@.a" + ")" * 5000 + ")]", "$[?(" + "!" * 5000 + "@.a)]"],
    ids=["parentheses", "negations"],
)
def test_a_path_with_5000_nested_filter_levels_is_a_syntax_error(path: str) -> None:
    assert "nests" in jsonpath.check_path(path)


def test_a_filter_chain_of_5000_conditions_is_evaluated_without_deep_recursion() -> None:
    path = "$[?(" + " && ".join(["@.a"] * 5000) + ")]"

    assert jsonpath.query(path, [{"a": 1}, {"b": 2}]) == [{"a": 1}]


def test_a_deep_scan_of_a_document_100000_levels_deep_completes() -> None:
    document: Any = {"a": 0}
    for level in range(1, 100_000):
        document = {"a": level, "next": document}

    assert len(jsonpath.query("$..a", document)) == 100_000


@FAST
@given(expression=intrinsic_like, document=json_values)
def test_any_intrinsic_text_parses_or_is_a_value_error_and_evaluates_or_is_a_states_error(
    expression: str, document: Any
) -> None:
    try:
        intrinsics.parse(expression)
    except ValueError as error:
        assert "intrinsic" in str(error)
    try:
        intrinsics.evaluate(expression, resolver({"a": document}))
    except StatesError as error:
        assert error.error == "States.IntrinsicFailure"
    except PathNotFound:
        pass


def test_intrinsic_calls_nested_5000_deep_are_a_parse_error() -> None:
    with pytest.raises(ValueError, match="nest more than"):
        intrinsics.parse("States.Array(" * 5000 + ")" * 5000)


@pytest.mark.parametrize(
    ("expression", "argument"),
    [
        ("States.StringToJson($.a)", "[" * 100_000 + "]" * 100_000),
        ("States.JsonToString($.a)", deep_list(100_000)),
        ("States.ArrayContains($.a, $.a)", deep_list(100_000)),
    ],
    ids=["string-to-json", "json-to-string", "array-contains"],
)
def test_an_intrinsic_argument_nested_100000_deep_fails_with_intrinsic_failure(
    expression: str, argument: Any
) -> None:
    with pytest.raises(StatesError) as caught:
        intrinsics.evaluate(expression, resolver({"a": argument}))

    assert caught.value.error == "States.IntrinsicFailure"


@FAST
@given(expression=jsonata_like, document=json_values)
def test_any_jsonata_text_compiles_or_is_a_value_error_and_evaluates_or_is_a_query_evaluation_error(
    expression: str, document: Any
) -> None:
    with contextlib.suppress(ValueError):
        compile_expression(expression)
    try:
        evaluate("{% " + expression + " %}", {"input": document}, {})
    except StatesError as error:
        assert error.error == "States.QueryEvaluationError"


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("$states.input", deep_list(100_000)),
        ("$parse($states.input)", "[" * 100_000 + "]" * 100_000),
        ("$string($states.input)", deep_list(100_000)),
    ],
    ids=["result", "parse", "string"],
)
def test_jsonata_on_a_value_nested_100000_deep_fails_with_query_evaluation_error(
    expression: str, value: Any
) -> None:
    with pytest.raises(StatesError) as caught:
        evaluate("{% " + expression + " %}", {"input": value}, {})

    assert caught.value.error == "States.QueryEvaluationError"


def test_jsonata_nested_5000_deep_is_a_compile_error() -> None:
    with pytest.raises(ValueError, match="invalid JSONata expression"):
        compile_expression("{% " + "(" * 5000 + "1" + ")" * 5000 + " %}")


ONE_TASK = {"StartAt": "Call", "States": {"Call": {"Type": "Task", "Resource": "Big", "End": True}}}
OVER_LIMIT = "x" * (PAYLOAD_LIMIT_BYTES + 1)


@pytest.mark.parametrize(
    "result", [OVER_LIMIT, {"blob": OVER_LIMIT}, [OVER_LIMIT]], ids=["str", "object", "array"]
)
def test_a_task_result_over_256_kib_fails_with_data_limit_exceeded(result: Any) -> None:
    machine = StateMachine.parse(ONE_TASK)

    outcome = LocalRunner(machine, {"Big": lambda event, context: result}).run({})

    assert (outcome.status, outcome.error) == ("FAILED", "States.DataLimitExceeded")


def test_a_task_result_just_under_256_kib_passes() -> None:
    machine = StateMachine.parse(ONE_TASK)
    result = {"blob": "x" * (PAYLOAD_LIMIT_BYTES - 100)}

    outcome = LocalRunner(machine, {"Big": lambda event, context: result}).run({})

    assert outcome.status == "SUCCEEDED"


def test_an_execution_input_over_256_kib_is_refused_at_start(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client = Client(redis_client, settings)
    client.register_machine("Pass", {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})

    name = client.start_execution("Pass", {"blob": OVER_LIMIT})

    assert client.describe(name)["error"] == "States.DataLimitExceeded"


class Spy:
    """Counts calls, standing in for any function a hostile resource string might reach."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, event: Any, context: Any) -> str:
        self.calls += 1
        return "ran"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.text(max_size=40)
    | st.sampled_from(
        ["os.system", "builtins.eval", "worker.entry.run_tasks", "subprocess.Popen", "../x", "__import__"]
    )
    | st.from_regex(r"[a-z_]{1,8}(\.[a-z_]{1,8}){1,3}(:[a-z]+)?", fullmatch=True)
)
def test_a_task_naming_any_unregistered_function_fails_without_importing_or_calling_anything(
    redis_client: redis.Redis, name: str
) -> None:
    spy = Spy()
    registry = FunctionRegistry()
    registry.register("Registered", spy)
    modules_before = set(sys.modules)
    task = {"execution": "e", "token": "t", "function": name, "payload": {}, "attempt": 0}

    [report] = carry_out([task], "events", connection=redis_client, prefix="t", registry=registry)

    if name == "Registered":
        assert (report["type"], spy.calls) == ("TaskSucceeded", 1)
    else:
        assert (report["type"], report["error"], spy.calls) == (
            "TaskFailed",
            "Lambda.ResourceNotFoundException",
            0,
        )
    assert set(sys.modules) == modules_before
