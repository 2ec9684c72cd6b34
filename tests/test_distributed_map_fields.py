"""A Distributed Map's ItemBatcher, ItemReader and ResultWriter, as AWS documents and recorded them.

Sources: the AWS Step Functions Developer Guide's "ItemBatcher (Map)" (each child gets
``{"Items": [...]}``, with ``"BatchInput"`` when declared; a batch holds at most
MaxItemsPerBatch items and MaxInputBytesPerBatch bytes, up to 256 KiB), its tutorial "Process
batch data with a Lambda function" (BatchInput's ``.$`` fields read the Map's input:
``{"BatchInput":{"MyMultiplicationFactor":7},"Items":[1,2,3]}``), "ResultWriter (Map)"
(WriterConfig's COMPACT and FLATTEN), "ItemReader (Map)" (items come only from Amazon S3), the
Amazon States Language's "Batching Items" (ItemSelector runs on each item before batching), and
AWS-recorded executions: a Map batching with MaxItemsPerBatchPath "2" taken from a variable (a
numeric string) gave ``[{"Items":[a,b]},{"Items":[c,d]}]``, and a Map run that cannot read its
items records MapRunStarted, MapRunFailed, MapStateFailed; MapRunStarted names the run
``arn:...:mapRun:<machine>/<Label>:<id>`` (the recorded case test_map_state_label).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from orchestrator.asl.definition import StateMachine
from orchestrator.asl.errors import DefinitionError
from orchestrator.asl.json_values import payload_bytes
from orchestrator.local import LocalResult, LocalRunner
from orchestrator.runtime.client import Client
from orchestrator.runtime.loop import Orchestrator
from orchestrator.settings import Settings
from tests.runtime_fixtures import LAMBDA, all_finished, drive
from worker.registry import default_registry

DISTRIBUTED = {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}}
ECHO = {"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "End": True}}}


def map_machine(
    query_language: str = "JSONPath", processor: dict[str, Any] | None = None, **fields: Any
) -> dict:
    """A machine of one distributed Map whose children echo their input."""
    body = {**(processor or ECHO), **DISTRIBUTED}
    state = {"Type": "Map", "ItemProcessor": body, "End": True, **fields}
    return {"QueryLanguage": query_language, "StartAt": "Batches", "States": {"Batches": state}}


def run(definition: dict[str, Any], input: Any) -> LocalResult:
    return LocalRunner(StateMachine.parse(definition, "Batching")).run(input)


def event_types(result: LocalResult) -> list[str]:
    return [event["type"] for event in result.history]


def test_batches_of_max_items_carry_the_batch_input_read_from_the_maps_input() -> None:
    definition = map_machine(
        ItemsPath="$.MyItems",
        ItemBatcher={
            "MaxItemsPerBatch": 3,
            "BatchInput": {"MyMultiplicationFactor.$": "$.MyMultiplicationFactor"},
        },
    )

    result = run(definition, {"MyMultiplicationFactor": 7, "MyItems": list(range(1, 11))})

    assert result.status == "SUCCEEDED", result.cause
    factor = {"MyMultiplicationFactor": 7}
    assert result.output == [
        {"BatchInput": factor, "Items": [1, 2, 3]},
        {"BatchInput": factor, "Items": [4, 5, 6]},
        {"BatchInput": factor, "Items": [7, 8, 9]},
        {"BatchInput": factor, "Items": [10]},
    ]
    assert list(result.output[0]) == ["BatchInput", "Items"]
    assert event_types(result) == [
        "ExecutionStarted",
        "MapStateEntered",
        "MapStateStarted",
        "MapRunStarted",
        "MapRunSucceeded",
        "MapStateSucceeded",
        "MapStateExited",
        "ExecutionSucceeded",
    ]


def test_the_map_run_started_event_names_the_run_with_the_maps_label() -> None:
    result = run(map_machine(ItemsPath="$.items", Label="TestMap"), {"items": [1]})

    [started] = [event for event in result.history if event["type"] == "MapRunStarted"]
    pattern = r"arn:aws:states:us-east-1:000000000000:mapRun:Batching/TestMap:[0-9a-f-]{36}"
    assert re.fullmatch(pattern, started["mapRunArn"]), started


def test_a_limit_read_through_a_path_may_be_numeric_text_and_without_batch_input_there_is_no_key() -> None:
    definition = {
        "StartAt": "Limits",
        "States": {
            "Limits": {"Type": "Pass", "Assign": {"maxItemsPerBatch": "2"}, "Next": "Batches"},
            "Batches": map_machine(
                ItemsPath="$.verdicts", ItemBatcher={"MaxItemsPerBatchPath": "$maxItemsPerBatch"}
            )["States"]["Batches"],
        },
    }
    verdicts = [{"verdict": v} for v in ("true", "false", "mostly-true", "false")]

    result = run(definition, {"verdicts": verdicts})

    assert result.status == "SUCCEEDED", result.cause
    assert result.output == [{"Items": verdicts[:2]}, {"Items": verdicts[2:]}]


def test_item_selector_shapes_each_item_before_the_items_are_batched() -> None:
    definition = map_machine(
        ItemsPath="$.names",
        ItemSelector={"name.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index"},
        ItemBatcher={"MaxItemsPerBatch": 2},
    )

    result = run(definition, {"names": ["a", "b", "c"]})

    assert result.output == [
        {"Items": [{"name": "a", "index": 0}, {"name": "b", "index": 1}]},
        {"Items": [{"name": "c", "index": 2}]},
    ]


def test_a_batch_ends_before_its_input_would_pass_max_input_bytes_per_batch() -> None:
    items = [{"blob": "x" * 100, "n": n} for n in range(20)]
    limit = 600
    definition = map_machine(ItemsPath="$.items", ItemBatcher={"MaxInputBytesPerBatch": limit})

    result = run(definition, {"items": items})

    assert result.status == "SUCCEEDED", result.cause
    batches = result.output
    assert [item for batch in batches for item in batch["Items"]] == items
    assert all(payload_bytes(batch) <= limit for batch in batches)
    # Each batch took as many items as fit: one more would have passed the limit.
    for batch, following in itertools.pairwise(batches):
        assert payload_bytes({"Items": [*batch["Items"], following["Items"][0]]}) > limit


def test_both_limits_apply_whichever_comes_first() -> None:
    items = [{"blob": "y" * 200}] * 5 + [1] * 5
    definition = map_machine(
        ItemsPath="$.items", ItemBatcher={"MaxItemsPerBatch": 3, "MaxInputBytesPerBatch": 500}
    )

    result = run(definition, {"items": items})

    assert [len(batch["Items"]) for batch in result.output] == [2, 2, 3, 3]


def test_an_item_bigger_than_the_byte_limit_goes_alone() -> None:
    items = ["small", "z" * 300, "small"]
    definition = map_machine(ItemsPath="$.items", ItemBatcher={"MaxInputBytesPerBatch": 100})

    result = run(definition, {"items": items})

    assert result.output == [{"Items": ["small"]}, {"Items": ["z" * 300]}, {"Items": ["small"]}]


def test_jsonata_limits_and_batch_input_are_evaluated() -> None:
    definition = map_machine(
        "JSONata",
        Items="{% $states.input.items %}",
        ItemBatcher={
            "MaxItemsPerBatch": "{% $states.input.size %}",
            "BatchInput": {"label": "{% $uppercase($states.input.label) %}"},
        },
    )

    result = run(definition, {"items": [1, 2, 3], "size": 2, "label": "run"})

    assert result.status == "SUCCEEDED", result.cause
    assert result.output == [
        {"BatchInput": {"label": "RUN"}, "Items": [1, 2]},
        {"BatchInput": {"label": "RUN"}, "Items": [3]},
    ]


def test_a_jsonata_limit_that_is_not_a_positive_integer_fails_with_a_query_evaluation_error() -> None:
    definition = map_machine("JSONata", Items="{% [1, 2] %}", ItemBatcher={"MaxItemsPerBatch": "{% 'two' %}"})

    result = run(definition, {})

    assert (result.status, result.error) == ("FAILED", "States.QueryEvaluationError")
    assert "MaxItemsPerBatch" in result.cause and "positive integer" in result.cause


def test_a_path_limit_that_is_not_a_positive_integer_fails_before_the_map_run_starts() -> None:
    definition = map_machine(ItemsPath="$.items", ItemBatcher={"MaxItemsPerBatchPath": "$.size"})

    result = run(definition, {"items": [1, 2], "size": 0})

    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert (
        'The MaxItemsPerBatchPath field refers to value "0" which is not a valid positive integer'
        in result.cause
    )
    assert "MapRunStarted" not in event_types(result)


def test_an_item_reader_fails_the_map_run_with_states_item_reader_failed_which_a_catch_takes() -> None:
    definition = map_machine(
        ItemReader={
            "Resource": "arn:aws:states:::s3:getObject",
            "Parameters": {"Bucket": "b", "Key": "k.json"},
        },
        Catch=[{"ErrorEquals": ["States.ItemReaderFailed"], "Next": "Caught"}],
    )
    definition["States"]["Batches"].pop("End")
    definition["States"]["Batches"]["Next"] = "Caught"
    definition["States"]["Caught"] = {"Type": "Pass", "End": True}

    result = run(definition, {"not": "items"})

    assert result.status == "SUCCEEDED"
    assert result.output["Error"] == "States.ItemReaderFailed"
    assert "redstep has no Amazon S3" in result.output["Cause"]
    assert event_types(result)[1:8] == [
        "MapStateEntered",
        "MapStateStarted",
        "MapRunStarted",
        "MapRunFailed",
        "MapStateFailed",
        "MapStateExited",
        "PassStateEntered",
    ]
    assert result.history[2]["length"] == 0


def test_a_result_writer_to_s3_fails_the_run_before_any_child_runs() -> None:
    processor = {
        "StartAt": "Work",
        "States": {"Work": {"Type": "Task", "Resource": LAMBDA + "Never", "End": True}},
    }
    writer = {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": "b", "Prefix": "p"}}
    definition = map_machine(processor=processor, ItemsPath="$.items", ResultWriter=writer)
    calls: list[Any] = []
    runner = LocalRunner(
        StateMachine.parse(definition, "Writer"), {"Never": lambda event, context: calls.append(event)}
    )

    result = runner.run({"items": [1, 2]})

    assert (result.status, result.error) == ("FAILED", "States.ResultWriterFailed")
    assert calls == []
    assert event_types(result)[-3:] == ["MapRunFailed", "MapStateFailed", "ExecutionFailed"]


@pytest.mark.parametrize(
    ("transformation", "expected"),
    [("COMPACT", [[1, 2], 3, [4]]), ("FLATTEN", [1, 2, 3, 4])],
)
def test_a_writer_config_without_a_resource_shapes_the_maps_output(
    transformation: str, expected: list
) -> None:
    writer = {"WriterConfig": {"Transformation": transformation, "OutputType": "JSON"}}
    definition = map_machine(ItemsPath="$.items", ResultWriter=writer)

    result = run(definition, {"items": [[1, 2], 3, [4]]})

    assert result.output == expected


def test_transformation_none_fails_the_run_saying_to_use_compact_or_flatten() -> None:
    definition = map_machine(ItemsPath="$.items", ResultWriter={"WriterConfig": {"Transformation": "NONE"}})

    result = run(definition, {"items": [1]})

    assert (result.status, result.error) == ("FAILED", "States.ResultWriterFailed")
    assert "use COMPACT or FLATTEN" in result.cause


def test_a_failing_child_fails_the_map_run_then_the_map_state() -> None:
    processor = {"StartAt": "Boom", "States": {"Boom": {"Type": "Fail", "Error": "Boom", "Cause": "no"}}}
    definition = map_machine(processor=processor, ItemsPath="$.items", ItemBatcher={"MaxItemsPerBatch": 2})

    result = run(definition, {"items": [1, 2, 3]})

    assert (result.status, result.error) == ("FAILED", "Boom")
    failed = [event for event in result.history if event["type"] == "MapRunFailed"]
    assert [(event["error"], event["cause"]) for event in failed] == [("Boom", "no")]
    assert event_types(result)[-3:] == ["MapRunFailed", "MapStateFailed", "ExecutionFailed"]


@pytest.mark.parametrize(("tolerated", "status"), [(1, "FAILED"), (2, "SUCCEEDED")])
def test_tolerated_failures_count_the_items_of_a_failed_batch(tolerated: int, status: str) -> None:
    processor = {
        "StartAt": "Check",
        "States": {
            "Check": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.Items[0]", "NumericEquals": 3, "Next": "Boom"}],
                "Default": "Fine",
            },
            "Boom": {"Type": "Fail", "Error": "Boom"},
            "Fine": {"Type": "Pass", "End": True},
        },
    }
    definition = map_machine(
        processor=processor,
        ItemsPath="$.items",
        ItemBatcher={"MaxItemsPerBatch": 2},
        ToleratedFailureCount=tolerated,
    )

    result = run(definition, {"items": [1, 2, 3, 4, 5]})

    assert result.status == status
    if status == "FAILED":
        assert result.error == "States.ExceedToleratedFailureThreshold"
    else:
        assert result.output[1] == {"Error": "Boom"}


@pytest.mark.parametrize(
    ("fields", "where", "says"),
    [
        (
            {"ItemBatcher": {"MaxItemsPerBatch": 2}, "ItemProcessor": ECHO},
            "/States/Batches/ItemBatcher",
            "is a field of a Distributed Map",
        ),
        ({"ItemBatcher": {"BatchInput": {}}}, "/States/Batches/ItemBatcher", "needs at least one of"),
        (
            {"ItemBatcher": {"MaxItemsPerBatch": 2, "MaxItemsPerBatchPath": "$.n"}},
            "/States/Batches/ItemBatcher",
            "cannot have both MaxItemsPerBatch and MaxItemsPerBatchPath",
        ),
        (
            {"ItemBatcher": {"MaxItemsPerBatch": 0}},
            "/States/Batches/ItemBatcher/MaxItemsPerBatch",
            "positive integer",
        ),
        (
            {"ItemBatcher": {"MaxInputBytesPerBatch": 262_145}},
            "/States/Batches/ItemBatcher/MaxInputBytesPerBatch",
            "at most 262144",
        ),
        (
            {"ItemBatcher": {"MaxItems": 2}},
            "/States/Batches/ItemBatcher/MaxItems",
            "not a field of an ItemBatcher",
        ),
        (
            {"ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"a.$": "$$$"}}},
            "/States/Batches/ItemBatcher/BatchInput/a.$",
            "",
        ),
        ({"ResultWriter": {}}, "/States/Batches/ResultWriter", "needs a WriterConfig"),
        (
            {"ResultWriter": {"WriterConfig": {"Transformation": "SQUASH"}}},
            "/States/Batches/ResultWriter/WriterConfig/Transformation",
            "NONE, COMPACT or FLATTEN",
        ),
    ],
)
def test_a_malformed_or_misplaced_distributed_field_is_refused_with_its_path(
    fields: dict[str, Any], where: str, says: str
) -> None:
    definition = map_machine(ItemsPath="$.items", **fields)
    if "ItemProcessor" in fields:
        definition["States"]["Batches"]["ItemProcessor"] = fields["ItemProcessor"]

    with pytest.raises(DefinitionError) as refused:
        StateMachine.parse(definition, "Malformed")

    assert [
        problem for problem in refused.value.problems if problem.where == where and says in problem.message
    ]


# -- on Redis: an orchestrator and a worker run the batches' functions ---------------------------


def total(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"sum": sum(event["Items"]) * event["BatchInput"]["factor"]}


@pytest.fixture
def total_registered() -> Iterator[None]:
    default_registry.register("Total", total)
    yield
    default_registry.unregister("Total")


def test_on_redis_each_batch_is_one_function_call_and_the_results_come_back_in_order(
    redis_client: redis.Redis, settings: Settings, total_registered: None
) -> None:
    processor = {
        "StartAt": "Total",
        "States": {"Total": {"Type": "Task", "Resource": LAMBDA + "Total", "End": True}},
    }
    definition = map_machine(
        processor=processor,
        ItemsPath="$.items",
        MaxConcurrency=2,
        ItemBatcher={"MaxItemsPerBatch": 4, "BatchInput": {"factor.$": "$.factor"}},
    )
    client = Client(redis_client, settings)
    client.register_machine("Totals", definition)
    client.start_execution("Totals", {"items": list(range(1, 11)), "factor": 10}, name="totals")

    drive(redis_client, settings, [Orchestrator(redis_client, settings, "o1")], all_finished(1))

    described = client.describe("totals")
    assert described is not None and described["status"] == "SUCCEEDED", described
    assert described["output"] == [{"sum": 100}, {"sum": 260}, {"sum": 190}]
    history = client.history("totals")
    assert [e["type"] for e in history if e["type"].startswith("MapRun")] == [
        "MapRunStarted",
        "MapRunSucceeded",
    ]
