"""A Distributed Map's own fields as a definition gives them: which Map is one, and their checks.

ItemReader, ItemBatcher and ResultWriter belong to a Map whose ItemProcessor's ProcessorConfig
says ``"Mode": "DISTRIBUTED"`` ("Using Map state in Distributed mode", AWS Step Functions
Developer Guide); what they do when the Map runs is ``distributed_map``'s.
"""

from __future__ import annotations

from typing import Any

from orchestrator.asl import jsonpath, query_jsonata
from orchestrator.asl.errors import Problem
from orchestrator.asl.json_values import PAYLOAD_LIMIT_BYTES

DISTRIBUTED_FIELDS = ("ItemReader", "ItemBatcher", "ResultWriter")
LIMITS = ("MaxItemsPerBatch", "MaxInputBytesPerBatch")
BATCHER_FIELDS = frozenset({*LIMITS, *(f"{limit}Path" for limit in LIMITS), "BatchInput"})
TRANSFORMATIONS = ("NONE", "COMPACT", "FLATTEN")
OUTPUT_TYPES = ("JSON", "JSONL")


def is_distributed(state: dict[str, Any]) -> bool:
    """Whether the Map's children run as a Map Run (ProcessorConfig Mode DISTRIBUTED)."""
    processor = state.get("ItemProcessor") or state.get("Iterator") or {}
    config = processor.get("ProcessorConfig") if isinstance(processor, dict) else None
    return isinstance(config, dict) and config.get("Mode") == "DISTRIBUTED"


def check(state: dict[str, Any], language: str, where: str) -> list[Problem]:
    """Every problem with a Map's ItemBatcher, ItemReader and ResultWriter (BatchInput's template aside)."""
    problems: list[Problem] = []
    given = [field for field in DISTRIBUTED_FIELDS if field in state]
    if given and not is_distributed(state):
        for field in given:
            problems.append(
                Problem(
                    f"{where}/{field}",
                    "is a field of a Distributed Map: set ItemProcessor.ProcessorConfig.Mode to DISTRIBUTED",
                )
            )
    if "ItemBatcher" in state:
        _check_batcher(state["ItemBatcher"], language, f"{where}/ItemBatcher", problems)
    if "ItemReader" in state and not isinstance(state["ItemReader"], dict):
        problems.append(Problem(f"{where}/ItemReader", "must be an object"))
    if "ResultWriter" in state:
        _check_writer(state["ResultWriter"], f"{where}/ResultWriter", problems)
    return problems


def _check_batcher(batcher: Any, language: str, where: str, problems: list[Problem]) -> None:
    if not isinstance(batcher, dict):
        problems.append(Problem(where, "must be an object"))
        return
    for field in batcher:
        if field not in BATCHER_FIELDS:
            problems.append(Problem(f"{where}/{field}", "is not a field of an ItemBatcher"))
    if not any(field in batcher for field in BATCHER_FIELDS - {"BatchInput"}):
        problems.append(
            Problem(where, "needs at least one of MaxItemsPerBatch(Path) and MaxInputBytesPerBatch(Path)")
        )
    for limit in LIMITS:
        path_field = f"{limit}Path"
        if limit in batcher and path_field in batcher:
            problems.append(Problem(where, f"cannot have both {limit} and {path_field}"))
        if limit in batcher:
            value = batcher[limit]
            if not (language == "JSONata" and query_jsonata.is_expression(value)):
                problem = _limit_problem(limit, value)
                if problem:
                    problems.append(Problem(f"{where}/{limit}", problem))
        if path_field in batcher:
            path = batcher[path_field]
            if language == "JSONata":
                why = "is a JSONPath field; a JSONata state cannot use it"
                problems.append(Problem(f"{where}/{path_field}", why))
            else:
                message = jsonpath.check_path(path) if isinstance(path, str) else "must be a path string"
                if message:
                    problems.append(Problem(f"{where}/{path_field}", message))


def _limit_problem(limit: str, value: Any) -> str:
    """Why ``value`` cannot be the ``limit`` of a batch, or ``""``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        return "must be a positive integer"
    if limit == "MaxInputBytesPerBatch" and value > PAYLOAD_LIMIT_BYTES:
        return f"must be at most {PAYLOAD_LIMIT_BYTES} (256 KiB)"
    return ""


def _check_writer(writer: Any, where: str, problems: list[Problem]) -> None:
    if not isinstance(writer, dict):
        problems.append(Problem(where, "must be an object"))
        return
    config = writer.get("WriterConfig")
    if "Resource" not in writer and config is None:
        problems.append(Problem(where, "needs a WriterConfig, a Resource with its Parameters, or both"))
    if config is None:
        return
    if not isinstance(config, dict):
        problems.append(Problem(f"{where}/WriterConfig", "must be an object"))
        return
    if config.get("Transformation", "COMPACT") not in TRANSFORMATIONS:
        problems.append(Problem(f"{where}/WriterConfig/Transformation", "must be NONE, COMPACT or FLATTEN"))
    if config.get("OutputType", "JSON") not in OUTPUT_TYPES:
        problems.append(Problem(f"{where}/WriterConfig/OutputType", "must be JSON or JSONL"))
