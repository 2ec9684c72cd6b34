"""Dragon records: the pydantic model and a loader that validates a whole file before anything else.

A record is accepted exactly as the AWS course's data set writes it (``dragon_name_str``,
``description_str``, ...). Values are kept as given, trailing spaces included, because the
dragon's name is the key of the dragon store and a silent rewrite would change which record
counts as a repeat.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, TextIO

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
)

from orchestrator.dragon_record import REQUIRED_FIELDS

# The required fields, in the order the course's records give them.
RECORD_FIELDS = REQUIRED_FIELDS


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return value


LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _unicode_text(value: Any) -> Any:
    # A JSON \uXXXX escape can decode to half of a surrogate pair, which no UTF-8 writer (a
    # terminal, a file, another service) can encode: refused here rather than stored to break later.
    # Checked before the type, so the length check never meets it first with a vaguer message.
    found = LONE_SURROGATE.search(value) if isinstance(value, str) else None
    if found:
        raise ValueError(
            f"holds a lone surrogate \\u{ord(found.group()):04x} at character {found.start()}, which is not "
            "text (a JSON \\uXXXX escape of half a character pair); fix how the file was written"
        )
    return value


# Strict: a number or a list where a name belongs is a broken export, not something to coerce.
RecordText = Annotated[StrictStr, AfterValidator(_not_blank), BeforeValidator(_unicode_text)]


class DragonRecord(BaseModel):
    """One dragon sighting, in the field names of the AWS course's records.

    Unknown fields are refused: the course's records have none, so an unknown key is almost
    always a misspelt optional field (``reportingPhonenumber``) that would otherwise vanish
    without a word.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    dragon_name_str: RecordText
    description_str: RecordText
    family_str: RecordText
    location_city_str: RecordText
    location_state_str: RecordText
    location_country_str: RecordText
    location_neighborhood_str: RecordText
    reportingPhoneNumber: Annotated[StrictStr | None, Field(min_length=1), BeforeValidator(_unicode_text)] = (
        None
    )
    confirmationRequired: StrictBool | None = None

    def body(self) -> dict[str, Any]:
        """The record as the queued message body: the fields it was given, nothing added."""
        return self.model_dump(exclude_none=True)


class InvalidRecords(ValueError):
    """Raised when a source holds records that are not valid; ``problems`` lists every one."""

    def __init__(self, source: str, problems: list[str], total: int | None = None) -> None:
        self.source = source
        self.problems = problems
        self.total = total
        counted = f" of {total}" if total is not None else ""
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"{source}: {len(problems)} problem(s){counted}, nothing enqueued:\n{lines}")


def describe_errors(index: int, error: ValidationError) -> list[str]:
    """One line per field error of record ``index``: ``record 3: dragon_name_str: Field required``."""
    lines = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "(record)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = f"unknown field (allowed: {', '.join(DragonRecord.model_fields)})"
        lines.append(f"record {index}: {where}: {message}")
    return lines


def validate_records(raw: Iterable[Any], source: str = "records") -> list[DragonRecord]:
    """Validate every raw record and return them all, or raise one error naming each bad one.

    Args:
        raw: decoded JSON values, one per record.
        source: how to name the input in the error.

    Raises:
        InvalidRecords: when one or more records are invalid; nothing is returned then.
    """
    records: list[DragonRecord] = []
    problems: list[str] = []
    total = 0
    for index, value in enumerate(raw):
        total += 1
        if not isinstance(value, dict):
            problems.append(f"record {index}: (record): expected a JSON object, got {type(value).__name__}")
            continue
        try:
            records.append(DragonRecord.model_validate(value))
        except ValidationError as error:
            problems.extend(describe_errors(index, error))
    if problems:
        raise InvalidRecords(source, problems, total)
    return records


TOO_DEEP = "invalid JSON: nested too deeply to decode"


def parse_text(text: str, source: str = "records") -> list[Any]:
    """Decode a JSON array, NDJSON (one object per line) or a single JSON object.

    Raises:
        InvalidRecords: when the text is not JSON in one of these forms, or nests so deeply
            that decoding it would exhaust the interpreter's recursion limit.
    """
    stripped = text.strip()
    if not stripped:
        raise InvalidRecords(source, ["no records: the input is empty"])
    if stripped.startswith("["):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError as error:
            raise InvalidRecords(source, [f"invalid JSON: {error}"]) from None
        except RecursionError:
            raise InvalidRecords(source, [TOO_DEEP]) from None
        return list(value)
    try:
        # A single pretty-printed object is also accepted; NDJSON lines would not parse as one value.
        return [json.loads(stripped)]
    except (json.JSONDecodeError, RecursionError):
        # Read line by line instead, so a problem is reported with the line it is on.
        pass
    values: list[Any] = []
    problems: list[str] = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values.append(json.loads(line))
        except json.JSONDecodeError as error:
            problems.append(f"line {line_number}: invalid JSON: {error.msg} (column {error.colno})")
        except RecursionError:
            problems.append(f"line {line_number}: {TOO_DEEP}")
    if problems:
        raise InvalidRecords(source, problems)
    return values


def read_source(source: str | Path | TextIO) -> tuple[str, str]:
    """The text of ``source`` (a path, ``-`` for stdin, or an open file) and a name for messages."""
    if isinstance(source, str | Path):
        if str(source) == "-":
            return sys.stdin.read(), "<stdin>"
        path = Path(source)
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except FileNotFoundError:
            raise InvalidRecords(str(path), ["no such file"]) from None
        except (OSError, UnicodeDecodeError) as error:
            raise InvalidRecords(str(path), [f"cannot read: {error}"]) from None
    return source.read(), getattr(source, "name", "<stream>")


def load_records(source: str | Path | TextIO) -> list[DragonRecord]:
    """Read and validate every record of ``source``: a JSON array, NDJSON, or ``-`` for stdin.

    Args:
        source: a file path, ``-`` for standard input, or an open text stream.

    Returns:
        All records, in input order, once every one of them is valid.

    Raises:
        InvalidRecords: listing each bad record by index and field (indexes count from 0,
            as in the JSON array or among the NDJSON lines that hold a record).
    """
    text, name = read_source(source)
    return validate_records(parse_text(text, name), name)
