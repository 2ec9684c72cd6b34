"""A Map over a large input keeps no copies of it that it can find again.

The execution's record holds the execution's input and each running state's input; a Map's
fork held two more copies besides, its items and its input after InputPath, and every commit
of the Map writes the record whole. Past a bound, the fork leaves out the input after InputPath
when it is the state's input itself, and the items when a plain ItemsPath finds them there, and
finds them again as it starts each iteration. These tests drive the core one task report at a
time, as an orchestrator does, and check the record's size, what every iteration was given and
what the Map returned.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from orchestrator.asl.definition import StateMachine
from orchestrator.asl.engine import advance, start_execution
from orchestrator.asl.execution import LEAN_FORK_SCHEMA, SCHEMA_VERSION

TASK = {"Type": "Task", "Resource": "f", "End": True}
ITEMS = [f"dragon-{i:03d}-" + "x" * 490 for i in range(500)]  # about 250 KB, under the limit


def map_machine(**fields: Any) -> StateMachine:
    state = {"Type": "Map", "ItemProcessor": {"StartAt": "T", "States": {"T": TASK}}, "End": True, **fields}
    return StateMachine.parse({"StartAt": "S", "States": {"S": state}}, "M")


def echo(payload: Any) -> Any:
    return payload


def run_answering(
    machine: StateMachine, input: Any, answer: Callable[[Any], Any] = echo
) -> tuple[dict[str, Any], list[Any], list[int]]:
    """Run to the end, each task returning ``answer`` of what it was given; the execution, the
    tasks' payloads in the order they started, and the record's size after every step."""
    step = start_execution(machine, "e", input, 0.0)
    execution, now = step.execution, 0.0
    waiting = [a for a in step.actions if a["type"] == "RunTask"]
    given, sizes = [a["payload"] for a in waiting], [len(json.dumps(execution))]
    while waiting:
        task = waiting.pop(0)
        now += 1
        event = {"type": "TaskSucceeded", "token": task["token"], "output": answer(task["payload"])}
        step = advance(machine, execution, event, now)
        started = [a for a in step.actions if a["type"] == "RunTask"]
        given += [a["payload"] for a in started]
        waiting += started
        sizes.append(len(json.dumps(execution)))
    return execution, given, sizes


def test_a_map_over_a_large_input_keeps_two_copies_of_it_not_four() -> None:
    input = {"items": ITEMS}
    execution, given, sizes = run_answering(map_machine(ItemsPath="$.items"), input, answer=len)

    assert execution["status"] == "SUCCEEDED"
    assert given == ITEMS and execution["output"] == [len(item) for item in ITEMS]
    size = len(json.dumps(input))
    # The execution's input and the Map state's, with room for the running iterations.
    assert max(sizes) < 2.2 * size
    assert execution["schema"] == LEAN_FORK_SCHEMA


def test_item_selector_sees_the_input_and_the_item_it_finds_again() -> None:
    """ItemSelector's $ is the Map's input after InputPath; $$.Map.Item its item and index."""
    selector = {"name.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index", "tag.$": "$.tag"}
    items = ITEMS[:300]  # still past the bound; their selections together under the limit
    input = {"tag": "red", "items": items}
    execution, given, _ = run_answering(map_machine(ItemsPath="$.items", ItemSelector=selector), input)

    expected = [{"name": item, "index": i, "tag": "red"} for i, item in enumerate(items)]
    assert execution["status"] == "SUCCEEDED"
    assert sorted(given, key=lambda g: g["index"]) == expected
    assert execution["output"] == expected


def test_items_a_filter_selects_are_kept_and_run_as_selected() -> None:
    """An ItemsPath that is no plain path (a filter) is not evaluated again: its items are kept."""
    input = {"items": [{"n": i, "pad": "y" * 120} for i in range(600)]}
    machine = map_machine(ItemsPath="$.items[?(@.n >= 300)]")
    execution, given, _ = run_answering(machine, input)

    assert execution["status"] == "SUCCEEDED"
    assert [g["n"] for g in given] == list(range(300, 600))
    assert [o["n"] for o in execution["output"]] == list(range(300, 600))


def test_a_large_input_after_input_path_is_kept_and_used() -> None:
    input = {"inner": {"items": ITEMS}, "other": "z"}
    execution, given, _ = run_answering(map_machine(InputPath="$.inner", ItemsPath="$.items"), input)

    assert execution["status"] == "SUCCEEDED"
    assert given == ITEMS and execution["output"] == ITEMS


def test_a_map_over_small_items_keeps_the_layout_any_reader_reads() -> None:
    execution, given, _ = run_answering(map_machine(ItemsPath="$.items"), {"items": [1, 2, 3]})

    assert execution["output"] == [1, 2, 3] and given == [1, 2, 3]
    assert execution["schema"] == SCHEMA_VERSION == 2
