"""Execution actions: Start, Describe, Stop, List and Redrive."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from starlette.concurrency import run_in_threadpool

from orchestrator.api.arns import name_problem
from orchestrator.api.errors import ApiError, validation_error
from orchestrator.api.pagination import listing_key
from orchestrator.api.stepfunctions import aliases, versions
from orchestrator.api.stepfunctions.context import StepFunctions, page_size
from orchestrator.protocol.decoding import strict_loads
from orchestrator.runtime import execution_index
from orchestrator.runtime.catalog import MachineEntry
from orchestrator.runtime.client import TERMINAL, ExecutionNotFound, NotRedrivable
from orchestrator.runtime.sources import MESSAGE_ID_RULE, message_id_problem

STOP_WAIT_SECONDS = 10.0
"""How long StopExecution waits for an orchestrator to apply the abort before it answers."""
STOP_POLL_FIRST_SECONDS = 0.02
STOP_POLL_MAX_SECONDS = 0.5
"""StopExecution looks whether the abort was applied after 20 ms, then twice as long each time, up to this."""
REDRIVABLE = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
SCAN_BATCH = 200


def start_execution(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    entry, version, alias = started_through(sfn, request["stateMachineArn"])
    name, value = execution_name(request), execution_input(request)
    arn = sfn.arns.execution(entry.name, name)
    revision = version.revision if version else None
    if not sfn.client.start_new_execution(entry.name, value, name, revision):
        existing = sfn.client.describe(name)
        # As AWS: the same request again while the first still runs answers with the first.
        same = existing is not None and (existing["stateMachine"], existing["input"]) == (entry.name, value)
        if not (same and existing is not None and existing["status"] == "RUNNING"):
            raise ApiError("ExecutionAlreadyExists", f"Execution Already Exists: '{arn}'")
        return {"executionArn": arn, "startDate": existing["startDate"]}
    started = sfn.client.describe(name)
    if started is not None and version is not None:
        versions.record_origin(sfn, started, version.number, alias)
    return {"executionArn": arn, "startDate": started["startDate"] if started else time.time()}


def execution_name(request: dict[str, Any]) -> str:
    """The name a start request gives its execution (a new UUID when it gives none), checked."""
    name = request.get("name") or str(uuid.uuid4())
    if problem := name_problem(name):
        raise ApiError("InvalidName", f"Invalid Name: '{name}': the name {problem}")
    if message_id_problem(name):
        raise ApiError(
            "InvalidName", f"Invalid Name: '{name}': redstep names executions with {MESSAGE_ID_RULE}"
        )
    return name


def execution_input(request: dict[str, Any]) -> Any:
    """The input a start request gives its execution, decoded (``{}`` when it gives none)."""
    try:
        return strict_loads(request.get("input", "{}"))
    except ValueError as error:
        raise ApiError(
            "InvalidExecutionInput", f"Invalid State Machine Execution Input: the input is not JSON: {error}"
        ) from None


def started_through(sfn: StepFunctions, arn: str) -> tuple[MachineEntry, versions.Version | None, str | None]:
    """The machine a StartExecution ARN names, and the version (and alias) it starts on, if any.

    An alias picks one of its versions by weight, for this execution alone.
    """
    qualified = versions.split_arn(sfn, arn)
    if qualified.alias is not None:
        try:
            entry, alias = aliases.alias_of(sfn, arn)
        except ApiError:
            raise ApiError("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{arn}'") from None
        number = alias.pick()
        return entry, versions.version_of(sfn, versions.version_arn(sfn, entry.name, number)), alias.name
    if qualified.version is not None:
        version = versions.version_of(sfn, arn)
        return sfn.machine(sfn.arns.state_machine(qualified.machine)), version, None
    return sfn.machine(arn), None, None


def describe_execution(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    described = sfn.execution(request["executionArn"])
    answer = _list_item(sfn, described, versions.origins(sfn, [described]).get(described["name"]))
    if request.get("includedData") != "METADATA_ONLY":
        answer["input"] = json.dumps(described["input"])
        answer["inputDetails"] = {"included": True}
        if described["status"] == "SUCCEEDED":
            answer["output"] = json.dumps(described["output"])
            answer["outputDetails"] = {"included": True}
    for field in ("error", "cause"):
        if described.get(field) is not None:
            answer[field] = described[field]
    if described["status"] in REDRIVABLE:
        answer["redriveStatus"] = "REDRIVABLE"
    else:
        answer["redriveStatus"] = "NOT_REDRIVABLE"
        answer["redriveStatusReason"] = f"Execution is {described['status']}"
    return answer


async def stop_execution(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    described = await run_in_threadpool(_stop, sfn, request)
    if described["status"] != "RUNNING":
        return {"stopDate": described.get("stopDate") or time.time()}
    # The wait for an orchestrator to apply the abort sleeps in the event loop, between short
    # reads in a thread: with no orchestrator running it lasts STOP_WAIT_SECONDS, and threads
    # held that long by a burst of stops would stall every other call.
    deadline, pause = time.monotonic() + STOP_WAIT_SECONDS, STOP_POLL_FIRST_SECONDS
    while time.monotonic() < deadline:
        await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, STOP_POLL_MAX_SECONDS)
        now = await run_in_threadpool(sfn.client.describe, described["name"])
        if now is not None and now["status"] in TERMINAL:
            return {"stopDate": now.get("stopDate") or time.time()}
    # No orchestrator applied it yet; the abort waits on the event stream for one.
    return {"stopDate": time.time()}


def _stop(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    """The execution as it was; a RUNNING one is asked to stop."""
    described = sfn.execution(request["executionArn"])
    if described["status"] == "RUNNING":
        sfn.client.stop_execution(described["name"], request.get("error"), request.get("cause"))
    return described


def redrive_execution(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    described = sfn.execution(request["executionArn"])
    if described["status"] not in TERMINAL or described["status"] == "SUCCEEDED":
        raise ApiError(
            "ExecutionNotRedrivable",
            f"Execution is {described['status']}:"
            " only FAILED, TIMED_OUT and ABORTED executions can be redriven",
        )
    try:
        redriven = sfn.client.redrive(described["name"])
    except ExecutionNotFound:
        raise ApiError(
            "ExecutionDoesNotExist", f"Execution Does Not Exist: '{request['executionArn']}'"
        ) from None
    except NotRedrivable as error:
        raise ApiError("ExecutionNotRedrivable", f"Execution cannot be redriven: {error}") from None
    return {"redriveDate": _redrive_date(sfn, redriven)}


def list_executions(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    if "mapRunArn" in request:
        raise validation_error("mapRunArn is not supported: redstep runs no Distributed Map runs")
    if "stateMachineArn" not in request:
        raise validation_error(
            "Must provide a StateMachine ARN or MapRun ARN: ListExecutions lists the executions of one state"
            " machine (pass stateMachineArn)"
        )
    arn = request["stateMachineArn"]
    qualified = versions.split_arn(sfn, arn)
    entry = sfn.machine(sfn.arns.state_machine(qualified.machine))
    if qualified.version is not None:
        versions.version_of(sfn, arn)
    elif qualified.alias is not None:
        aliases.alias_of(sfn, arn)
    status, redrive = request.get("statusFilter"), request.get("redriveFilter")
    listing = listing_key("ListExecutions", arn=arn, status=status, redrive=redrive)
    cursor = sfn.tokens.read(request["nextToken"], listing) if "nextToken" in request else None
    before = (float(cursor[0]), str(cursor[1])) if cursor else None
    limit, found = page_size(request), []
    exhausted = False
    # The machine's own index when it is complete, else the global one (entries are checked alike).
    by_machine = execution_index.is_built(sfn.client.redis, sfn.client.keys)
    while len(found) <= limit and not exhausted:
        if by_machine:
            entries = execution_index.newest(
                sfn.client.redis, sfn.client.keys, entry.name, status, before, SCAN_BATCH
            )
        else:
            entries = sfn.client.execution_index(status, before, SCAN_BATCH)
        exhausted = len(entries) < SCAN_BATCH
        # Executions older than the machine belong to an earlier machine of that name.
        current = [(name, score) for name, score in entries if score >= entry.executions_since]
        exhausted = exhausted or len(current) < len(entries)
        described = sfn.client.describe_many([name for name, _ in current])
        candidates = [
            (score, execution)
            for name, score in current
            if (execution := described.get(name))
            and execution["stateMachine"] == entry.name
            and (status is None or execution["status"] == status)
            and _redrive_matches(execution, redrive)
        ]
        found += _started_through_filter(sfn, qualified, candidates)
        if entries:
            before = (entries[-1][1], entries[-1][0])
    page = [execution for _, execution in found[:limit]]
    through = versions.origins(sfn, page)
    answer: dict[str, Any] = {
        "executions": [_list_item(sfn, execution, through.get(execution["name"])) for execution in page]
    }
    if len(found) > limit:
        last_score, last = found[limit - 1]
        answer["nextToken"] = sfn.tokens.issue(listing, [last_score, last["name"]])
    return answer


def _started_through_filter(
    sfn: StepFunctions, qualified: versions.Qualified, candidates: list[tuple[float, dict[str, Any]]]
) -> list[tuple[float, dict[str, Any]]]:
    """The ``candidates`` a version or alias ARN lists: those started through it (all, for a machine ARN)."""
    if qualified.version is None and qualified.alias is None:
        return candidates
    through = versions.origins(sfn, [execution for _, execution in candidates])
    kept = []
    for score, execution in candidates:
        origin = through.get(execution["name"])
        if origin is None:
            continue
        if qualified.alias is not None and origin.get("alias") != qualified.alias:
            continue
        if qualified.version is not None and origin["version"] != qualified.version:
            continue
        kept.append((score, execution))
    return kept


def _list_item(
    sfn: StepFunctions, described: dict[str, Any], origin: dict[str, Any] | None = None
) -> dict[str, Any]:
    item = {
        "executionArn": sfn.execution_arn(described),
        "stateMachineArn": sfn.arns.state_machine(described["stateMachine"]),
        "name": described["name"],
        "status": described["status"],
        "startDate": described["startDate"],
        "redriveCount": described.get("redriveCount", 0),
    }
    if described.get("stopDate") is not None:
        item["stopDate"] = described["stopDate"]
    if origin is not None:
        item["stateMachineVersionArn"] = versions.version_arn(
            sfn, described["stateMachine"], origin["version"]
        )
        if origin.get("alias"):
            item["stateMachineAliasArn"] = aliases.alias_arn(sfn, described["stateMachine"], origin["alias"])
    return item


def _redrive_matches(described: dict[str, Any], redrive_filter: str | None) -> bool:
    if redrive_filter is None:
        return True
    return (described.get("redriveCount", 0) > 0) == (redrive_filter == "REDRIVEN")


def _redrive_date(sfn: StepFunctions, redriven: dict[str, Any]) -> float:
    # The redrive is the newest ExecutionRedriven event of the history.
    length = sfn.client.history_length(redriven["name"])
    for event in reversed(sfn.client.history_range(redriven["name"], max(0, length - 50), length - 1)):
        if event.get("type") == "ExecutionRedriven":
            return float(event["timestamp"])
    return time.time()
