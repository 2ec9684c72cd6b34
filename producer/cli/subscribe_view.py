"""How ``redstep subscribe`` prints notifications: one readable line, or one JSON envelope per line.

Anyone who can publish on the topic writes what is printed, so both forms go through
:mod:`producer.cli.views`: the human line escapes control and bidi characters and doubles the
text's backslashes (a message that is JSON keeps its own escapes), the JSON line
escapes only lone surrogates (which no UTF-8 stdout could write).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any, TextIO

from producer.cli.views import json_text, printable, printable_json


def human_line(envelope: dict[str, Any]) -> str:
    """``<time>  <subject>  <message>`` on one line, whatever the message holds."""
    timestamp = envelope.get("Timestamp", "")
    subject = envelope.get("Subject") or "(no subject)"
    message = envelope.get("Message", "")
    text, shown = (message, printable) if isinstance(message, str) else (json_text(message), printable_json)
    # A multi-line message would break the one-line-per-notification promise.
    return printable(f"{timestamp}  {subject}  ") + shown(" ".join(text.split()))


def json_line(envelope: dict[str, Any]) -> str:
    """The SNS-shaped envelope as compact JSON, one line."""
    return json_text(envelope)


def first(messages: Iterable[dict[str, Any]], count: int | None) -> Iterator[dict[str, Any]]:
    """All messages, or only the first ``count`` of them."""
    return iter(messages) if count is None else islice(messages, count)


def print_messages(
    messages: Iterable[dict[str, Any]], out: TextIO, as_json: bool = False, count: int | None = None
) -> int:
    """Print each message as it arrives, flushed at once, and return how many were printed.

    Args:
        messages: the envelopes, in arrival order (a live iterator blocks between them).
        out: where to print; flushed after every line so a pipe reader sees each one at once.
        as_json: one JSON envelope per line instead of the human form.
        count: stop after this many messages; ``None`` runs until the iterator ends.
    """
    printed = 0
    for envelope in first(messages, count):
        out.write((json_line(envelope) if as_json else human_line(envelope)) + "\n")
        out.flush()
        printed += 1
    return printed
