"""Human renderings of executions, histories and the stack's status, for the terminal (rich).

What is shown was stored by anyone who can write to Redis, so no value may break the output:
human text shows control, bidirectional-override and lone-surrogate characters as backslash
escapes (``\\u202e``), and its own backslashes doubled, and is never read as rich markup; JSON
keeps every other character as it is and writes a lone surrogate as its JSON escape
(``"\\ud800"``), which decodes back to it.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

# AWS ListExecutions names first; whatever else an item holds follows in its own order.
EXECUTION_COLUMNS = ("name", "status", "stateMachine", "stateMachineArn", "startDate", "stopDate")
HISTORY_COLUMNS = ("id", "timestamp", "type")


# C0 and C1 controls, lone surrogates, line and paragraph separators, and the characters that
# reorder text (Trojan Source): any of them can hide, move or forge what a terminal shows.
_UNPRINTABLE_CHARS = "\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
UNPRINTABLE = re.compile(f"[{_UNPRINTABLE_CHARS}]")
# The text's own backslashes too: else "a\\nb" (backslash, n) would print as "a\nb" (newline) does.
UNPRINTABLE_OR_BACKSLASH = re.compile(f"[{_UNPRINTABLE_CHARS}\\\\]")
SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape(found: re.Match[str]) -> str:
    char = found.group()
    return SHORT_ESCAPES.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def printable(text: str) -> str:
    """``text`` with every character that could hide or forge terminal output as a backslash escape.

    A backslash of the text itself shows as ``\\\\``, so every escape reads back one way.
    """
    return UNPRINTABLE_OR_BACKSLASH.sub(_escape, text)


def printable_json(text: str) -> str:
    """JSON ``text`` as :func:`printable` shows text, its backslashes kept single.

    In JSON a backslash already starts an escape (a backslash of the data is written ``\\\\``),
    so doubling them would show a newline in a string as a backslash followed by an n.
    """
    return UNPRINTABLE.sub(_escape, text)


def json_text(value: Any, indent: int | None = None, ascii_only: bool = False) -> str:
    """``value`` as JSON that any UTF-8 writer takes: a lone surrogate becomes its ``\\uXXXX`` escape."""
    separators = None if indent else (",", ":")
    text = json.dumps(value, indent=indent, separators=separators, ensure_ascii=ascii_only, default=str)
    return LONE_SURROGATE.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def _cell(value: Any, column: str = "") -> Text:
    # A Text, not a str: rich would read "[/bold]" in a dragon's name as markup, and fail on it.
    if value is None:
        return Text("")
    if isinstance(value, int | float) and column.lower().endswith(("date", "timestamp")):
        # Dates are kept as epoch seconds; people read them as UTC times.
        return Text(datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3])
    if isinstance(value, dict | list):
        return Text(printable_json(json_text(value)))
    return Text(printable(str(value)))


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


def _event_details(event: dict[str, Any]) -> Text:
    """An event's details, compacted: its ``...EventDetails`` object, else its other fields."""
    nested = [value for key, value in event.items() if str(key).endswith("EventDetails")]
    if nested:
        return Text(" ").join(_cell(value) for value in nested)
    shown = (*HISTORY_COLUMNS, "previousEventId")
    rest = {k: v for k, v in event.items() if k not in shown and v is not None}
    return Text(" ").join(Text(f"{printable(str(key))}=") + _cell(value) for key, value in rest.items())


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
    table = Table(title=Text(printable(title)), title_justify="left", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in values.items():
        table.add_row(_cell(key), _cell(value, str(key)))
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
    """``value`` as JSON on stdout, nothing else (so ``--json`` output pipes into jq).

    Non-ASCII text is written as it is on a UTF-8 stdout and as ``\\uXXXX`` escapes on any
    other (``PYTHONIOENCODING=ascii``, a Latin-1 locale), where it could not be encoded.
    """
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "").replace("_", "")
    print(json_text(value, indent=2, ascii_only=encoding not in ("utf8", "utf8sig")), flush=True)
