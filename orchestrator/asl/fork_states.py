"""Parallel and Map: states that fork child threads and join their results."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from orchestrator.asl import distributed_map, errors, payload
from orchestrator.asl.dataflow import StateData
from orchestrator.asl.definition import child_scope
from orchestrator.asl.distributed_fields import is_distributed
from orchestrator.asl.distributed_map import Batcher
from orchestrator.asl.errors import StatesError
from orchestrator.asl.execution import LEAN_FORK_SCHEMA, Fork, Run, Thread
from orchestrator.asl.json_values import (
    BOUND_LIMIT,
    PAYLOAD_LIMIT_BYTES,
    exceeds_payload_limit,
    json_type,
    numeric,
    payload_bound,
    payload_bytes,
)
from orchestrator.asl.task_state import ReportedError, data_limit_error

# "Using Map state in Inline mode" (AWS Step Functions Developer Guide): an inline Map runs
# "up to 40 concurrent iterations", whatever its MaxConcurrency asks for beyond that, and 0
# (the default) means as many as that limit allows, not every item at once.
INLINE_MAP_CONCURRENCY = 40
# A Map's fork would keep copies of its input: the items, and the input after InputPath. The
# record holding them is written whole on every commit, so items whose bound (payload_bound)
# is over this are not copied when they can be found again: the input after InputPath when it
# is the state's input itself, the items when a plain ItemsPath (names and indexes) finds them
# there. The record then says LEAN_FORK_SCHEMA.
REFIND_ABOVE = 16 * 1024
PLAIN_PATH = re.compile(r"\$(?:\.[A-Za-z_][A-Za-z0-9_]*|\[[0-9]+\])*")


def enter_parallel(run: Run, thread: Thread, data: StateData) -> None:
    state = data.state
    effective = data.effective_input()
    if effective is not data.raw_input and exceeds_payload_limit(effective):
        # Every branch gets this input: Parameters (or Arguments) made it more than the limit.
        raise data_limit_error(thread["state"])
    run.record(thread, "ParallelStateStarted")
    branches = state["Branches"]
    fork: Fork = {"results": [None] * len(branches), "pending": len(branches), "children": []}
    thread["fork"] = fork
    for index in range(len(branches)):
        scope = child_scope(thread["scope"], thread["state"], index)
        start = run.machine.scope(scope).start_at
        child = run.spawn(thread, scope, start, effective, dict(thread["vars"]), index)
        if thread.get("quiet"):
            child["quiet"] = True
        fork["children"].append(child["id"])
        run.ready.append(child["id"])


def enter_map(run: Run, thread: Thread, data: StateData) -> None:
    state = data.state
    if "ItemReader" in state:  # (only a distributed Map has one) its items would come from S3
        run.record(thread, "MapStateStarted", length=0)
        run.record(thread, "MapRunStarted", mapRunArn=distributed_map.map_run_arn(run.machine.name, state))
        _fail_run(run, thread, distributed_map.refusal(state))
    selected = data.selected_input()
    items = _items(data, selected)
    if data.jsonata:
        max_concurrency = _jsonata_number(data, "MaxConcurrency", 0)
    else:
        max_concurrency = _number_field(data, selected, "MaxConcurrency", 0)
    run.record(thread, "MapStateStarted", length=len(items))
    tolerated_count, tolerated_percentage = _tolerance(data, selected)
    batcher = Batcher(data, selected) if "ItemBatcher" in state else None
    if is_distributed(state):
        run.record(thread, "MapRunStarted", mapRunArn=distributed_map.map_run_arn(run.machine.name, state))
        _fail_run(run, thread, distributed_map.refusal(state))
    count = len(items)
    if batcher is not None:
        inputs = [_item_input(data, selected, {"Index": i, "Value": item}) for i, item in enumerate(items)]
        ends = batcher.batch_ends(inputs)
        count = len(ends)
    fork: Fork = {
        "results": [None] * count,
        "pending": count,
        "next": 0,
        "running": 0,
        "failures": 0,
        "items": items,
        "selected": selected,
        "max": _concurrency(state, int(max_concurrency), count),
        "toleratedCount": tolerated_count,
        "toleratedPercentage": tolerated_percentage,
        "children": [],
    }
    if batcher is not None:
        fork["batchEnds"] = ends
        if batcher.declared:
            fork["batchInput"] = batcher.batch_input
    thread["fork"] = fork
    if selected is data.raw_input and payload_bound(items) > REFIND_ABOVE:
        del fork["selected"]
        if not data.jsonata and PLAIN_PATH.fullmatch(state.get("ItemsPath", "$")):
            del fork["items"]
            fork["count"] = len(items)
        run.require_schema(LEAN_FORK_SCHEMA)
    if not items:
        _map_done(run, thread, data)
        return
    _start_iterations(run, thread, data)


def _fail_run(run: Run, thread: Thread, refused: StatesError | None) -> None:
    """Fail the Map run with ``refused``, when it is given: MapRunFailed, then the state fails."""
    if refused is None:
        return
    run.record(thread, "MapRunFailed", error=refused.error, cause=refused.cause)
    raise ReportedError(refused.error, refused.cause)


def _concurrency(state: dict[str, Any], asked: int, count: int) -> int:
    """How many iterations may run at once: ``asked`` (0: no limit of its own), capped for an inline Map."""
    if is_distributed(state):
        return asked or count or 1
    return min(asked or INLINE_MAP_CONCURRENCY, INLINE_MAP_CONCURRENCY)


def _items(data: StateData, selected: Any) -> list[Any]:
    state = data.state
    if data.jsonata:
        items = data.evaluate_jsonata(state["Items"], "Items") if "Items" in state else data.raw_input
    else:
        items = data.resolve(selected)(state.get("ItemsPath", "$"))
    if not isinstance(items, list):
        raise StatesError(
            errors.RUNTIME if not data.jsonata else errors.QUERY_EVALUATION_ERROR,
            _items_cause(data, items),
        )
    return items


def _items_cause(data: StateData, items: Any) -> str:
    rendered = json.dumps(items, separators=(",", ":"))
    if data.jsonata and isinstance(data.state.get("Items"), str):
        expression = data.state["Items"].strip()[2:-2].strip()
        return (
            f"The JSONata expression '{expression}' specified for the field 'Items' returned an unexpected "
            f"result type. Expected 'array', but was '{json_type(items)}' for value: {rendered}"
        )
    if data.jsonata:
        return f"Map state input must be an array but was: {rendered}"
    return f"Item path {data.state.get('ItemsPath', '$')} evaluated to a non-array value: {rendered}"


def _number_field(data: StateData, selected: Any, field: str, default: float) -> float:
    state = data.state
    if field in state:
        value = state[field]
    elif f"{field}Path" in state:
        path = state[f"{field}Path"]
        raw = data.resolve(selected)(path)
        integral = field != "ToleratedFailurePercentage"
        value = numeric(raw, integral)
        if value is None:
            shown = raw if isinstance(raw, str) else json.dumps(raw, separators=(",", ":"))
            kind = "integer" if integral else "float"
            raise StatesError(
                errors.RUNTIME,
                f'The {field}Path field refers to value "{shown}" which is not a valid {kind}: {path}',
            )
    else:
        return default
    if field == "ToleratedFailureCount" and value < 0:
        raise StatesError(errors.RUNTIME, "ToleratedFailureCount cannot be negative.")
    if field == "ToleratedFailurePercentage" and not 0 <= value <= 100:
        raise StatesError(errors.RUNTIME, "ToleratedFailurePercentage must be between 0 and 100.")
    return value


def _jsonata_number(data: StateData, field: str, default: float) -> float:
    value = data.state.get(field, default)
    if isinstance(value, str):
        value = data.evaluate_jsonata(value, field)
    return value


def _tolerance(data: StateData, selected: Any) -> tuple[float, float]:
    if data.jsonata:
        return (
            _jsonata_number(data, "ToleratedFailureCount", 0),
            _jsonata_number(data, "ToleratedFailurePercentage", 0),
        )
    return (
        _number_field(data, selected, "ToleratedFailureCount", 0),
        _number_field(data, selected, "ToleratedFailurePercentage", 0),
    )


def _iteration_count(fork: Fork) -> int:
    """How many children the Map runs in all: one per batch, or one per item."""
    if "batchEnds" in fork:
        return len(fork["batchEnds"])
    return fork["count"] if "count" in fork else len(fork["items"])


def _start_iterations(run: Run, thread: Thread, data: StateData) -> None:
    fork = thread["fork"]
    count = _iteration_count(fork)
    if fork["next"] >= count or fork["running"] >= fork["max"]:
        return
    selected = fork.get("selected", data.raw_input)
    items = fork["items"] if "items" in fork else _items(data, selected)
    while fork["next"] < count and fork["running"] < fork["max"]:
        index = fork["next"]
        fork["next"] += 1
        fork["running"] += 1
        if "batchEnds" in fork:
            value, item_input = None, _batch_input(data, selected, items, fork, index)
        else:
            value = items[index]
            item_input = _item_input(data, selected, {"Index": index, "Value": value})
        if item_input is not value and exceeds_payload_limit(item_input):
            # An item is part of the Map's input, under the limit; ItemSelector can make more.
            _abort_children(run, thread)
            raise data_limit_error(thread["state"])
        if not is_distributed(data.state):
            run.record(thread, "MapIterationStarted", name=thread["state"], index=index)
        scope = child_scope(thread["scope"], thread["state"])
        start = run.machine.scope(scope).start_at
        child = run.spawn(thread, scope, start, item_input, dict(thread["vars"]), index)
        if thread.get("quiet") or is_distributed(data.state):
            child["quiet"] = True
        fork["children"].append(child["id"])
        run.ready.append(child["id"])


def _batch_input(data: StateData, selected: Any, items: list[Any], fork: Fork, index: int) -> Any:
    """The input of the child that runs batch ``index``: its items, each as ItemSelector makes it."""
    ends = fork["batchEnds"]
    first = ends[index - 1] if index else 0
    inputs = [_item_input(data, selected, {"Index": i, "Value": items[i]}) for i in range(first, ends[index])]
    return distributed_map.batch(inputs, *([fork["batchInput"]] if "batchInput" in fork else []))


def _item_input(data: StateData, selected: Any, item: dict[str, Any]) -> Any:
    state = data.state
    data.context["Map"] = {"Item": item}
    if data.jsonata:
        if "ItemSelector" in state:
            return data.evaluate_jsonata(state["ItemSelector"], "ItemSelector")
        return item["Value"]
    template_field = "ItemSelector" if "ItemSelector" in state else "Parameters"
    if template_field in state:
        return payload.fill_template(state[template_field], data.scope(selected), template_field)
    return item["Value"]


def child_succeeded(run: Run, parent: Thread, child: Thread, output: Any) -> None:
    fork = parent["fork"]
    fork["pending"] -= 1
    _gather(run, fork, child["slot"], output)
    fork["children"].remove(child["id"])
    data = run.data(parent)
    try:
        if data.state["Type"] == "Map":
            if not is_distributed(data.state):
                run.record(parent, "MapIterationSucceeded", name=parent["state"], index=child["slot"])
            fork["running"] -= 1
            if fork["pending"] == 0:
                _map_done(run, parent, data)
            else:
                _start_iterations(run, parent, data)
        elif fork["pending"] == 0:
            _join(run, parent, data, "Parallel")
    except StatesError as failure:
        _raised(run, parent, data, failure)


def child_failed(run: Run, parent: Thread, child: Thread, error: str | None, cause: str | None) -> None:
    fork = parent["fork"]
    fork["children"].remove(child["id"])
    data = run.data(parent)
    if data.state["Type"] == "Map":
        if not is_distributed(data.state):
            run.record(parent, "MapIterationFailed", name=parent["state"], index=child["slot"])
        fork["failures"] += _items_of(fork, child["slot"])
        fork["running"] -= 1
        fork["pending"] -= 1
        if _tolerated(fork):
            failure = {"Error": error, **({"Cause": cause} if cause is not None else {})}
            _gather(run, fork, child["slot"], failure)
            try:
                if fork["pending"] == 0:
                    _map_done(run, parent, data)
                else:
                    _start_iterations(run, parent, data)
            except StatesError as failure:
                _raised(run, parent, data, failure)
            return
        if fork["toleratedCount"] or fork["toleratedPercentage"]:
            error = errors.EXCEED_TOLERATED_FAILURE_THRESHOLD
            cause = "The specified tolerated failure threshold was exceeded"
        if is_distributed(data.state):
            details = {key: value for key, value in (("error", error), ("cause", cause)) if value is not None}
            run.record(parent, "MapRunFailed", **details)
    if (
        data.state["Type"] == "Parallel"
        and run.machine.state(child["scope"], child["state"])["Type"] == "Task"
    ):
        run.record(child, "TaskStateAborted")
    _abort_children(run, parent)
    run.fail_state(parent, data, error, cause, reported=True)


def _gather(run: Run, fork: Fork, slot: int, result: Any) -> None:
    """Keep a finished child's ``result`` in its slot, unless the results together are surely too big.

    The results wait in the execution's record, which every commit writes whole, until the
    last child finishes; the join then fails the state if together they are over 256 KiB.
    Thousands of iterations returning large results would grow that record to hundreds of
    megabytes on the way to that failure. So once the results gathered, with at least one
    byte for each still to come, are over the limit, they are dropped and the fork keeps
    only that verdict (``over``): the children still run and the join fails as it would have.
    The document then says LEAN_FORK_SCHEMA, which code that would join nulls refuses.

    A cheap bound (``payload_bound``) vouches for small results; past it they are measured,
    all once, then each as it comes (``measured``). ``pending`` no longer counts this child.
    """
    if fork.get("over"):
        return
    results = fork["results"]
    results[slot] = result
    brackets_and_commas = len(results) + 1
    measured = fork.get("measured")
    if measured is None:
        bound = fork.get("bound", 0) + payload_bound(result)
        if bound + brackets_and_commas <= BOUND_LIMIT:
            fork["bound"] = bound
            return
        fork.pop("bound", None)
        # A slot still to come holds null, four bytes, in the measure of them all.
        measured = payload_bytes(results) - brackets_and_commas - 4 * fork["pending"]
    else:
        measured += payload_bytes(result)
    fork["measured"] = measured
    if measured + brackets_and_commas + fork["pending"] > PAYLOAD_LIMIT_BYTES:
        fork["over"] = True
        fork["results"] = [None] * len(results)
        run.require_schema(LEAN_FORK_SCHEMA)


def _raised(run: Run, thread: Thread, data: StateData, failure: StatesError) -> None:
    """Fail the fork's state with an error it raised while it joined or started iterations."""
    reported = isinstance(failure, ReportedError)
    run.fail_state(
        thread, data, failure.error, failure.cause, reported=reported, matched_by_all=failure.matched_by_all
    )


def _items_of(fork: Fork, slot: int) -> int:
    """How many items the child in ``slot`` ran: its batch's, or one."""
    ends = fork.get("batchEnds")
    if ends is None:
        return 1
    return ends[slot] - (ends[slot - 1] if slot else 0)


def _tolerated(fork: Fork) -> bool:
    # "Tolerated failure threshold for Distributed Map state": thresholds count failed items,
    # and a batch that fails fails every item in it.
    total = fork["batchEnds"][-1] if "batchEnds" in fork else len(fork["results"])
    if fork["failures"] <= fork["toleratedCount"]:
        return bool(fork["toleratedCount"])
    if fork["toleratedPercentage"]:
        return fork["failures"] <= math.floor(total * fork["toleratedPercentage"] / 100)
    return False


def _abort_children(run: Run, parent: Thread) -> None:
    for child_id in list(parent["fork"]["children"]):
        child = run.find_thread(child_id)
        if child is None:
            continue
        state = run.machine.state(child["scope"], child["state"])
        if state["Type"] == "Task" and child.get("tokens"):
            run.record(child, "TaskStateAborted")
        run.remove_thread(child)
    parent["fork"]["children"] = []


def _map_done(run: Run, thread: Thread, data: StateData) -> None:
    if is_distributed(data.state):
        run.record(thread, "MapRunSucceeded")
    _join(run, thread, data, "Map")


def _join(run: Run, thread: Thread, data: StateData, state_type: str) -> None:
    fork = thread.pop("fork")
    results = fork["results"]
    if fork.get("over") or exceeds_payload_limit(results):
        # "Quotas for Standard Workflows": 262,144 bytes is the most "a task, state, or
        # execution" may output; the branches' or iterations' results together count as one.
        failure = data_limit_error(thread["state"])
        run.fail_state(thread, data, failure.error, failure.cause, reported=True)
        return
    if state_type == "Map":
        run.record(thread, "MapStateSucceeded")
        results = distributed_map.written(data.state, results)
    output = data.output(results)
    if output is not results and output is not data.raw_input and exceeds_payload_limit(output):
        # The results fit, but ResultSelector, ResultPath or Output made the output more.
        failure = data_limit_error(thread["state"])
        run.fail_state(thread, data, failure.error, failure.cause, reported=True)
        return
    run.assign(thread, data.assignments(data.state.get("Assign"), result=results))
    run.record(thread, f"{state_type}StateExited", name=thread["state"], output=output)
    run.advance_or_finish(thread, data.compiled, output)
