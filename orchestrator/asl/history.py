"""History events as the core records them, and as AWS's GetExecutionHistory shows them.

A run records thousands of events a second and most are never read, so each is kept as a
tuple, turned into AWS's shape only when someone reads the history:

- a state's Entered or Exited event: ``(id, previousEventId, timestamp, type, name, key, value)``,
  where ``key`` is "input" or "output";
- any other event: ``(id, previousEventId, timestamp, type, details)``, with ``details`` a dict.
"""

from __future__ import annotations

from typing import Any

RawEvent = tuple[Any, ...]


def history_event(raw: RawEvent) -> dict[str, Any]:
    """One recorded event in AWS's shape: id, previousEventId, timestamp, type and its details."""
    if len(raw) == 7:
        event_id, previous, timestamp, event_type, name, key, value = raw
        return {
            "id": event_id,
            "previousEventId": previous,
            "timestamp": timestamp,
            "type": event_type,
            "name": name,
            key: value,
        }
    event_id, previous, timestamp, event_type, details = raw
    return {
        "id": event_id,
        "previousEventId": previous,
        "timestamp": timestamp,
        "type": event_type,
        **details,
    }


def history_events(raw_events: list[RawEvent]) -> list[dict[str, Any]]:
    return [history_event(raw) for raw in raw_events]
