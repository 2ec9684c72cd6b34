"""The part of botocore's service models that redstep serve vendors, built from botocore.

``python -m tests.api_model_subset`` rewrites ``orchestrator/api/models/<service>.json``;
tests/test_api_model.py fails when the vendored copy and botocore's model part ways.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import botocore.loaders

from orchestrator.api.models import OPERATIONS, VENDORED

# What a shape keeps: enough to validate input and to shape output; the prose goes.
KEPT_FIELDS = (
    "type",
    "required",
    "members",
    "member",
    "key",
    "value",
    "min",
    "max",
    "enum",
    "pattern",
    "sensitive",
)

METADATA = ("apiVersion", "targetPrefix", "jsonVersion", "xmlNamespace")


def _ref(ref: dict[str, Any], service: str) -> dict[str, Any]:
    """A member reference: its shape, and for the query protocol (SNS) the name it travels under."""
    kept = {"shape": ref["shape"]}
    if service == "sns" and "locationName" in ref:
        kept["locationName"] = ref["locationName"]
    return kept


def model_subset(service: str = "stepfunctions") -> dict[str, Any]:
    """The served operations of ``service`` and every shape their input, output and errors reach."""
    model = botocore.loaders.Loader().load_service_model(service, "service-2")
    operations = {name: model["operations"][name] for name in OPERATIONS[service]}
    pending = [op[side]["shape"] for op in operations.values() for side in ("input", "output") if side in op]
    pending += [error["shape"] for op in operations.values() for error in op.get("errors", [])]
    shapes: dict[str, Any] = {}
    while pending:
        name = pending.pop()
        if name in shapes:
            continue
        shape = {key: model["shapes"][name][key] for key in KEPT_FIELDS if key in model["shapes"][name]}
        if "members" in shape:
            shape["members"] = {member: _ref(ref, service) for member, ref in shape["members"].items()}
            pending += [ref["shape"] for ref in shape["members"].values()]
        for field in ("member", "key", "value"):
            if field in shape:
                shape[field] = _ref(shape[field], service)
                pending.append(shape[field]["shape"])
        shapes[name] = shape
    kept_operations = {
        name: {
            "input": op["input"]["shape"],
            # An action that answers nothing (DeleteQueue) has no output shape.
            **({"output": op["output"]["shape"]} if "output" in op else {}),
            # The query protocol (SNS) wraps an answer in <ActionResult>.
            **(
                {"resultWrapper": op["output"]["resultWrapper"]}
                if "resultWrapper" in op.get("output", {})
                else {}
            ),
            "errors": sorted(error["shape"] for error in op.get("errors", [])),
        }
        for name, op in operations.items()
    }
    return {
        "metadata": {key: model["metadata"][key] for key in METADATA if key in model["metadata"]},
        "operations": kept_operations,
        "shapes": dict(sorted(shapes.items())),
    }


def render(subset: dict[str, Any]) -> str:
    return json.dumps(subset, indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    for name in OPERATIONS:
        Path(VENDORED[name]).write_text(render(model_subset(name)))
