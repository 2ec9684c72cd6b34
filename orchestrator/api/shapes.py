"""Requests checked against, and answers shaped by, botocore's service models.

The model says which members are required, their types and their limits (a name of 1 to 80
characters, an input of at most 256 KiB, a definition of at most 1 MiB, ``maxResults`` 0 to
1000...); a request that breaks one is refused with AWS's error code and wording before any
handler runs. Members the model does not know are ignored, as AWS ignores them.
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator.api.errors import ApiError, constraint_error, serialization_error
from orchestrator.api.models import service_model

JSON_TYPE_NAMES = {
    str: "STRING_VALUE",
    int: "NUMBER_VALUE",
    float: "NUMBER_VALUE",
    bool: "BOOLEAN_VALUE",
    list: "START_ARRAY",
    dict: "START_OBJECT",
}


class ServiceShapes:
    """The shapes of one service's model."""

    def __init__(self, service: str) -> None:
        model = service_model(service)
        self.shapes: dict[str, dict[str, Any]] = model["shapes"]
        self.operations: dict[str, dict[str, Any]] = model["operations"]

    def check_input(self, operation: str, body: Any) -> dict[str, Any]:
        """``body`` once it matches the operation's input shape.

        Raises:
            ApiError: SerializationException for a wrong type, ValidationException for a
                missing member or one out of its limits; the message names the member.
        """
        if not isinstance(body, dict):
            raise serialization_error(f"the request body must be a JSON object, not {_json_type(body)}")
        self._check(self.operations[operation]["input"], body, "")
        return body

    def _check(self, shape_name: str, value: Any, where: str) -> None:
        shape = self.shapes[shape_name]
        kind = shape["type"]
        if kind == "structure":
            self._check_structure(shape, value, where)
        elif kind == "string":
            _expect(value, str, where, "a string")
            _check_length(shape, value, where)
            if "enum" in shape and value not in shape["enum"]:
                raise constraint_error(
                    value, where, f"Member must satisfy enum value set: [{', '.join(shape['enum'])}]"
                )
        elif kind in ("integer", "long"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise serialization_error(
                    f"{_json_type(value)} can not be converted to an Integer at '{where}'"
                )
            if "min" in shape and value < shape["min"]:
                raise constraint_error(
                    value, where, f"Member must have value greater than or equal to {shape['min']}"
                )
            if "max" in shape and value > shape["max"]:
                raise constraint_error(
                    value, where, f"Member must have value less than or equal to {shape['max']}"
                )
        elif kind == "boolean":
            _expect(value, bool, where, "a boolean")
        elif kind == "list":
            _expect(value, list, where, "a list")
            _check_length(shape, value, where)
            for index, item in enumerate(value):
                self._check(shape["member"]["shape"], item, f"{where}.{index + 1}.member")
        elif kind == "map":
            _expect(value, dict, where, "an object")
        elif kind == "timestamp" and (isinstance(value, bool) or not isinstance(value, int | float | str)):
            raise serialization_error(f"{_json_type(value)} can not be converted to a Timestamp at '{where}'")

    def _check_structure(self, shape: dict[str, Any], value: Any, where: str) -> None:
        _expect(value, dict, where or "the request", "an object")
        for member in shape.get("required", []):
            if value.get(member) is None:
                raise constraint_error(None, _join(where, member), "Member must not be null")
        for member, ref in shape.get("members", {}).items():
            if value.get(member) is not None:
                self._check(ref["shape"], value[member], _join(where, member))

    def shaped(self, shape_name: str, value: dict[str, Any]) -> dict[str, Any]:
        """``value`` cut to the members of a structure shape: JSON values where the model has a
        string become JSON text, None members go, nested structures are cut alike."""
        members = self.shapes[shape_name].get("members", {})
        result: dict[str, Any] = {}
        for member, ref in members.items():
            item = value.get(member)
            if item is None:
                continue
            kind = self.shapes[ref["shape"]]["type"]
            if kind == "string" and not isinstance(item, str):
                item = json.dumps(item, separators=(",", ":"))
            elif kind == "structure" and isinstance(item, dict):
                item = self.shaped(ref["shape"], item)
            result[member] = item
        return result

    def members(self, shape_name: str) -> dict[str, Any]:
        return self.shapes[shape_name].get("members", {})


def _expect(value: Any, kind: type, where: str, what: str) -> None:
    if isinstance(value, bool) and kind is not bool:
        raise serialization_error(f"BOOLEAN_VALUE can not be converted to {what} at '{where}'")
    if not isinstance(value, kind):
        raise serialization_error(f"{_json_type(value)} can not be converted to {what} at '{where}'")


def _check_length(shape: dict[str, Any], value: str | list[Any], where: str) -> None:
    shown = "*** Sensitive Data Redacted ***" if shape.get("sensitive") else value
    if "min" in shape and len(value) < shape["min"]:
        raise constraint_error(
            shown, where, f"Member must have length greater than or equal to {shape['min']}"
        )
    if "max" in shape and len(value) > shape["max"]:
        raise constraint_error(shown, where, f"Member must have length less than or equal to {shape['max']}")


def _join(where: str, member: str) -> str:
    return f"{where}.{member}" if where else member


def _json_type(value: Any) -> str:
    return "null" if value is None else JSON_TYPE_NAMES.get(type(value), type(value).__name__)


__all__ = ["ApiError", "ServiceShapes"]
