"""GetExecutionHistory: the stored events, paged either way, in AWS's HistoryEvent shape.

The runtime keeps each event flat (``{"id", "previousEventId", "timestamp", "type", ...details}``);
AWS nests the details under a member named after the event's type
(``executionStartedEventDetails``, ``stateEnteredEventDetails``...) with JSON data as text.
The model says which member and which fields, so the mapping is read from it, not retyped.
"""

from __future__ import annotations

from typing import Any

from orchestrator.api.pagination import listing_key
from orchestrator.api.shapes import ServiceShapes
from orchestrator.api.stepfunctions.context import StepFunctions, page_size

EVENT_FIELDS = ("id", "previousEventId", "timestamp", "type")
EXECUTION_DATA = ("input", "output")


def get_execution_history(sfn: StepFunctions, request: dict[str, Any]) -> dict[str, Any]:
    described = sfn.execution(request["executionArn"])
    name, reverse = described["name"], bool(request.get("reverseOrder"))
    listing = listing_key("GetExecutionHistory", arn=request["executionArn"], reverse=reverse)
    limit = page_size(request)
    # The cursor is the position of the next event to return: positions never move, as a
    # history only grows at its end.
    position = sfn.tokens.read(request["nextToken"], listing) if "nextToken" in request else None
    if reverse:
        first = sfn.client.history_length(name) - 1 if position is None else int(position)
        start = max(0, first - limit + 1)
        events = list(reversed(sfn.client.history_range(name, start, first))) if first >= 0 else []
        following = start - 1 if start > 0 else None
    else:
        start = 0 if position is None else int(position)
        events = sfn.client.history_range(name, start, start + limit)
        following = start + limit if len(events) > limit else None
        events = events[:limit]
    include_data = request.get("includeExecutionData", True)
    answer: dict[str, Any] = {"events": [aws_event(sfn.shapes, event, include_data) for event in events]}
    if following is not None:
        answer["nextToken"] = sfn.tokens.issue(listing, following)
    return answer


def aws_event(shapes: ServiceShapes, event: dict[str, Any], include_data: bool = True) -> dict[str, Any]:
    """One stored event in the shape of AWS's HistoryEvent."""
    shaped = {field: event[field] for field in EVENT_FIELDS if field in event}
    member = details_member(shapes, event["type"])
    if member is None:
        return shaped
    details_shape = shapes.members("HistoryEvent")[member]["shape"]
    details = {key: value for key, value in event.items() if key not in EVENT_FIELDS}
    if not include_data:
        details = {key: value for key, value in details.items() if key not in EXECUTION_DATA}
    fields = shapes.members(details_shape)
    for data in EXECUTION_DATA:
        if data in details and f"{data}Details" in fields:
            details[f"{data}Details"] = {"truncated": False}
    shaped[member] = shapes.shaped(details_shape, details)
    return shaped


def details_member(shapes: ServiceShapes, event_type: str) -> str | None:
    """The HistoryEvent member that holds an event type's details, or None when it has none."""
    if event_type.endswith("StateEntered"):
        return "stateEnteredEventDetails"
    if event_type.endswith("StateExited"):
        return "stateExitedEventDetails"
    member = event_type[0].lower() + event_type[1:] + "EventDetails"
    return member if member in shapes.members("HistoryEvent") else None
