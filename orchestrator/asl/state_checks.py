"""Static checks of one state's fields: which fields a type allows, and that each is well formed.

Paths must parse, intrinsic calls must parse, JSONata expressions must compile, Choice rules
must be well formed, Retry and Catch must follow the specification's rules, and a Task's
resource must be one redstep can run.
"""

from __future__ import annotations

from typing import Any

from orchestrator.asl import choice, distributed_fields, intrinsics, jsonpath, query_jsonata
from orchestrator.asl.errors import ALL, Problem
from orchestrator.asl.resources import parse_resource

_COMMON = {"Type", "Comment", "QueryLanguage"}
_FLOW = {"Next", "End"}
_JSONPATH_IO = {"InputPath", "OutputPath"}
_JSONATA_IO = {"Output", "Assign"}
_ERRORS = {"Retry", "Catch"}

ALLOWED_FIELDS: dict[str, set[str]] = {
    "Pass": _COMMON | _FLOW | _JSONPATH_IO | _JSONATA_IO | {"ResultPath", "Parameters", "Result"},
    "Task": _COMMON | _FLOW | _JSONPATH_IO | _JSONATA_IO | _ERRORS | {
        "Resource", "ResultPath", "Parameters", "ResultSelector", "Arguments", "Credentials",
        "TimeoutSeconds", "TimeoutSecondsPath", "HeartbeatSeconds", "HeartbeatSecondsPath",
    },
    "Choice": _COMMON | _JSONPATH_IO | _JSONATA_IO | {"Choices", "Default"},
    "Wait": _COMMON | _FLOW | _JSONPATH_IO | _JSONATA_IO | {
        "Seconds", "SecondsPath", "Timestamp", "TimestampPath",
    },
    "Succeed": _COMMON | _JSONPATH_IO | {"Output"},
    "Fail": _COMMON | {"Error", "ErrorPath", "Cause", "CausePath"},
    "Parallel": _COMMON | _FLOW | _JSONPATH_IO | _JSONATA_IO | _ERRORS | {
        "Branches", "ResultPath", "Parameters", "ResultSelector", "Arguments",
    },
    "Map": _COMMON | _FLOW | _JSONPATH_IO | _JSONATA_IO | _ERRORS | {
        "ItemProcessor", "Iterator", "ItemsPath", "Items", "ItemSelector", "Parameters", "ResultPath",
        "ResultSelector", "Arguments", "MaxConcurrency", "MaxConcurrencyPath", "ToleratedFailureCount",
        "ToleratedFailureCountPath", "ToleratedFailurePercentage", "ToleratedFailurePercentagePath",
        "ItemReader", "ItemBatcher", "ResultWriter", "Label",
    },
}  # fmt: skip

# Fields that exist only in one query language.
JSONPATH_ONLY = {
    "InputPath", "OutputPath", "ResultPath", "Parameters", "ResultSelector", "ItemsPath",
    "TimeoutSecondsPath", "HeartbeatSecondsPath", "SecondsPath", "TimestampPath", "ErrorPath",
    "CausePath", "MaxConcurrencyPath", "ToleratedFailureCountPath", "ToleratedFailurePercentagePath",
}  # fmt: skip
JSONATA_ONLY = {"Arguments", "Output", "Items"}

_REFERENCE_PATHS = ("InputPath", "OutputPath", "ItemsPath")
_VALUE_PATHS = (
    "SecondsPath", "TimestampPath", "TimeoutSecondsPath", "HeartbeatSecondsPath", "MaxConcurrencyPath",
    "ToleratedFailureCountPath", "ToleratedFailurePercentagePath",
)  # fmt: skip
_TEMPLATES = ("Parameters", "ResultSelector", "ItemSelector")


def check_state(state: dict[str, Any], language: str, where: str) -> list[Problem]:
    """Every problem with the fields of one state whose type is already known to be valid."""
    problems: list[Problem] = []
    state_type = state["Type"]
    for field in state:
        if field not in ALLOWED_FIELDS[state_type]:
            problems.append(Problem(f"{where}/{field}", f"is not a field of a {state_type} state"))
        elif language == "JSONata" and field in JSONPATH_ONLY:
            problems.append(Problem(f"{where}/{field}", "is a JSONPath field; a JSONata state cannot use it"))
        elif language == "JSONPath" and field in JSONATA_ONLY:
            problems.append(
                Problem(f"{where}/{field}", "is a JSONata field; set QueryLanguage to JSONata to use it")
            )
    if language == "JSONata":
        _check_expressions(state, where, problems)
    else:
        _check_paths(state, where, problems)
    if state_type == "Task":
        _check_resource(state, where, problems)
    if state_type == "Choice" and isinstance(state.get("Choices"), list):
        for index, rule in enumerate(state["Choices"]):
            problems.extend(choice.check_rule(rule, f"{where}/Choices/{index}"))
    if state_type == "Wait":
        given = [
            field for field in ("Seconds", "SecondsPath", "Timestamp", "TimestampPath") if field in state
        ]
        if len(given) != 1:
            problems.append(
                Problem(
                    where, "a Wait state needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath"
                )
            )
    if state_type == "Map":
        problems.extend(distributed_fields.check(state, language, where))
    if state_type == "Fail":
        for name in ("Error", "Cause"):
            if name in state and f"{name}Path" in state:
                problems.append(Problem(where, f"a Fail state cannot have both {name} and {name}Path"))
    _check_numbers(state, where, problems)
    _check_retry(state.get("Retry"), f"{where}/Retry", problems)
    _check_catch(state.get("Catch"), f"{where}/Catch", problems)
    return problems


def _check_paths(state: dict[str, Any], where: str, problems: list[Problem]) -> None:
    for field in _REFERENCE_PATHS + _VALUE_PATHS:
        value = state.get(field)
        if value is None:
            continue
        message = jsonpath.check_path(value) if isinstance(value, str) else "must be a path string"
        if message:
            problems.append(Problem(f"{where}/{field}", message))
    if "ResultPath" in state:
        message = _result_path_problem(state["ResultPath"])
        if message:
            problems.append(Problem(f"{where}/ResultPath", message))
    for field in ("ErrorPath", "CausePath"):
        if field in state:
            message = _error_path_problem(state[field])
            if message:
                problems.append(Problem(f"{where}/{field}", message))
    for field in _TEMPLATES:
        if field in state:
            _check_template(state[field], f"{where}/{field}", problems)
    batcher = state.get("ItemBatcher")
    if isinstance(batcher, dict) and "BatchInput" in batcher:
        _check_template(batcher["BatchInput"], f"{where}/ItemBatcher/BatchInput", problems)
    if "Assign" in state:
        _check_template(state["Assign"], f"{where}/Assign", problems)


def _result_path_problem(value: Any) -> str | None:
    """What is wrong with a ResultPath (a reference path, or null to discard the result), or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        return "must be a path string, or null to discard the result"
    return jsonpath.check_result_path(value)


def _error_path_problem(value: Any) -> str | None:
    """What is wrong with a Fail state's ErrorPath or CausePath (a path or an intrinsic), or None."""
    if not isinstance(value, str):
        return "must be a path or an intrinsic function string"
    if not intrinsics.is_intrinsic(value):
        return jsonpath.check_path(value)
    try:
        intrinsics.parse(value)
    except ValueError as error:
        return str(error)
    return None


def _check_template(template: Any, where: str, problems: list[Problem]) -> None:
    if isinstance(template, list):
        for index, item in enumerate(template):
            _check_template(item, f"{where}/{index}", problems)
        return
    if not isinstance(template, dict):
        return
    for key, value in template.items():
        if not key.endswith(".$"):
            _check_template(value, f"{where}/{key}", problems)
            continue
        if not isinstance(value, str):
            problems.append(
                Problem(f"{where}/{key}", "a field ending in .$ needs a path or an intrinsic call string")
            )
        elif intrinsics.is_intrinsic(value):
            try:
                intrinsics.parse(value)
            except ValueError as exc:
                problems.append(Problem(f"{where}/{key}", str(exc)))
        else:
            message = jsonpath.check_path(value)
            if message:
                problems.append(Problem(f"{where}/{key}", message))


def _check_expressions(value: Any, where: str, problems: list[Problem]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key not in ("Branches", "ItemProcessor", "Iterator", "Choices"):
                _check_expressions(item, f"{where}/{key}", problems)
        for index, rule in enumerate(
            value.get("Choices") or [] if isinstance(value.get("Choices"), list) else []
        ):
            _check_expressions(rule, f"{where}/Choices/{index}", problems)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_expressions(item, f"{where}/{index}", problems)
    elif query_jsonata.is_expression(value):
        try:
            query_jsonata.compile_expression(value)
        except ValueError as exc:
            problems.append(Problem(where, str(exc)))


def _check_resource(state: dict[str, Any], where: str, problems: list[Problem]) -> None:
    resource = state.get("Resource")
    if isinstance(resource, str):
        try:
            parse_resource(resource)
        except ValueError as exc:
            problems.append(Problem(f"{where}/Resource", str(exc)))


# The Developer Guide's Wait and Task pages: Seconds is "an integer value from 0 to 99999999";
# TimeoutSeconds and HeartbeatSeconds are positive integers no larger.
_LARGEST_SECONDS = 99_999_999


def _check_numbers(state: dict[str, Any], where: str, problems: list[Problem]) -> None:
    for field, minimum, maximum in (
        ("TimeoutSeconds", 1, _LARGEST_SECONDS),
        ("HeartbeatSeconds", 1, _LARGEST_SECONDS),
        ("Seconds", 0, _LARGEST_SECONDS),
        ("MaxConcurrency", 0, None),
    ):
        value = state.get(field)
        if value is None or (isinstance(value, str) and query_jsonata.is_expression(value)):
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            problems.append(Problem(f"{where}/{field}", f"must be an integer of at least {minimum}"))
        elif maximum is not None and value > maximum:
            problems.append(Problem(f"{where}/{field}", f"must be at most {maximum}"))
    timeout, heartbeat = state.get("TimeoutSeconds"), state.get("HeartbeatSeconds")
    if isinstance(timeout, int) and isinstance(heartbeat, int) and heartbeat >= timeout:
        problems.append(Problem(f"{where}/HeartbeatSeconds", "must be smaller than TimeoutSeconds"))


def _check_error_equals(rule: Any, where: str, problems: list[Problem]) -> None:
    names = rule.get("ErrorEquals") if isinstance(rule, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(name, str) for name in names):
        problems.append(Problem(f"{where}/ErrorEquals", "must be a non-empty array of error names"))
        return
    if ALL in names and names != [ALL]:
        problems.append(Problem(f"{where}/ErrorEquals", "States.ALL must appear alone"))


def _check_retry(retriers: Any, where: str, problems: list[Problem]) -> None:
    if retriers is None:
        return
    if not isinstance(retriers, list):
        problems.append(Problem(where, "must be an array of retriers"))
        return
    for index, retrier in enumerate(retriers):
        _check_error_equals(retrier, f"{where}/{index}", problems)
        if not isinstance(retrier, dict):
            continue
        if ALL in (retrier.get("ErrorEquals") or []) and index != len(retriers) - 1:
            problems.append(Problem(f"{where}/{index}", "a retrier with States.ALL must be the last one"))
        attempts = retrier.get("MaxAttempts", 3)
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 0:
            problems.append(Problem(f"{where}/{index}/MaxAttempts", "must be a non-negative integer"))
        interval = retrier.get("IntervalSeconds", 1)
        if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
            problems.append(Problem(f"{where}/{index}/IntervalSeconds", "must be a positive integer"))
        backoff = retrier.get("BackoffRate", 2.0)
        if not isinstance(backoff, int | float) or isinstance(backoff, bool) or backoff < 1:
            problems.append(Problem(f"{where}/{index}/BackoffRate", "must be a number of at least 1.0"))
        if retrier.get("JitterStrategy", "NONE") not in ("NONE", "FULL"):
            problems.append(Problem(f"{where}/{index}/JitterStrategy", "must be NONE or FULL"))


def _check_catch(catchers: Any, where: str, problems: list[Problem]) -> None:
    if catchers is None:
        return
    if not isinstance(catchers, list):
        problems.append(Problem(where, "must be an array of catchers"))
        return
    for index, catcher in enumerate(catchers):
        _check_error_equals(catcher, f"{where}/{index}", problems)
        if isinstance(catcher, dict) and "ResultPath" in catcher:
            message = _result_path_problem(catcher["ResultPath"])
            if message:
                problems.append(Problem(f"{where}/{index}/ResultPath", message))
