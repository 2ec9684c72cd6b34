"""Human renderings of executions, histories and the stack's status, for the terminal (rich)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

# AWS ListExecutions names first; whatever else an item holds follows in its own order.
EXECUTION_COLUMNS = ("name", "status", "stateMachine", "stateMachineArn", "startDate", "stopDate")
HISTORY_COLUMNS = ("id", "timestamp", "type")


def _cell(value: Any, column: str = "") -> str:
    if value is None:
        return ""
    if isinstance(value, int | float) and column.lower().endswith(("date", "timestamp")):
        # Dates are kept as epoch seconds; people read them as UTC times.
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def _columns(rows: list[dict[str, Any]], preferred: tuple[str, ...]) -> list[str]:
    present = {key for row in rows for key in row}
    return [key for key in preferred if key in present]


def executions_table(executions: list[dict[str, Any]]) -> Table:
    """One row per execution: name, status, state machine, start and stop."""
    columns = _columns(executions, EXECUTION_COLUMNS) or sorted({k for e in executions for k in e})
    table = Table(title=f"{len(executions)} execution(s)", title_justify="left")
    for column in columns:
        table.add_column(column, no_wrap=column in ("name", "status"))
    for execution in executions:
        table.add_row(*(_cell(execution.get(column), column) for column in columns))
    return table


def _event_details(event: dict[str, Any]) -> str:
    """An event's details, compacted: its ``...EventDetails`` object, else its other fields."""
    nested = [value for key, value in event.items() if key.endswith("EventDetails")]
    if nested:
        return " ".join(_cell(value) for value in nested)
    shown = (*HISTORY_COLUMNS, "previousEventId")
    rest = {k: v for k, v in event.items() if k not in shown and v is not None}
    return " ".join(f"{key}={_cell(value)}" for key, value in rest.items())


def history_table(events: list[dict[str, Any]]) -> Table:
    """One row per history event, in the order of GetExecutionHistory, details last."""
    table = Table(title=f"{len(events)} event(s)", title_justify="left")
    for column in (*HISTORY_COLUMNS, "details"):
        table.add_column(column, overflow="fold")
    for event in events:
        cells = (_cell(event.get(column), column) for column in HISTORY_COLUMNS)
        table.add_row(*cells, _event_details(event))
    return table


def mapping_table(title: str, values: dict[str, Any]) -> Table:
    """A two-column table of one mapping, nested values shown as compact JSON."""
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in values.items():
        table.add_row(str(key), _cell(value, str(key)))
    return table


def print_status(console: Console, status: dict[str, Any]) -> None:
    """Each section of the status (queues, dead letters, workers, executions) as its own table."""
    loose = {key: value for key, value in status.items() if not isinstance(value, dict)}
    if loose:
        console.print(mapping_table("redstep", loose))
    for key, value in status.items():
        if isinstance(value, dict):
            console.print(mapping_table(key, value))


def print_json(value: Any) -> None:
    """``value`` as JSON on stdout, nothing else (so ``--json`` output pipes into jq)."""
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str), flush=True)
