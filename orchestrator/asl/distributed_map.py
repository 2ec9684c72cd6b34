"""The fields only a Distributed Map has: ItemBatcher, ItemReader and ResultWriter.

As the AWS Step Functions Developer Guide's "ItemBatcher (Map)", "ItemReader (Map)" and
"ResultWriter (Map)" and the Amazon States Language's "Batching Items" describe them:

- **ItemBatcher** groups the selected items (ItemSelector runs on each item first) into
  batches, each the input of one child workflow: ``{"BatchInput": ..., "Items": [...]}``,
  with BatchInput only when the field is declared (a payload template evaluated on the Map's
  input, or JSONata). A batch ends at ``MaxItemsPerBatch`` items, or before its input would
  pass ``MaxInputBytesPerBatch`` bytes: at most, and by default, 256 KiB, the limit of a
  child's input. The guide does not say how bytes are counted; here they are the child's
  whole input, so a batch within the limit is a child input within it. An item too big for a
  batch of its own goes alone, and fails the Map only if it is over 256 KiB.
- **ItemReader** reads the items from Amazon S3 (its only sources), and **ResultWriter**
  with a ``Resource`` writes the results there. redstep has no S3, so such a Map run fails
  as AWS fails one whose bucket it cannot read or write: ``States.ItemReaderFailed`` or
  ``States.ResultWriterFailed``, which Retry and Catch can take, before any child runs.
- **ResultWriter** without a Resource only shapes the Map's result (``WriterConfig``):
  ``COMPACT`` (the default) is the children's outputs, as without ResultWriter; ``FLATTEN``
  spreads the outputs that are arrays one level. ``NONE`` gives each child's execution
  metadata (ARN, dates, input and output as text); redstep's children are not executions
  with ARNs of their own, so NONE fails the run as an unwritable result does.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from orchestrator.asl import errors, payload
from orchestrator.asl.dataflow import StateData
from orchestrator.asl.errors import StatesError
from orchestrator.asl.execution import ACCOUNT, REGION
from orchestrator.asl.json_values import PAYLOAD_LIMIT_BYTES, json_type, numeric, payload_bytes

ITEM_READER_FAILED = "States.ItemReaderFailed"
RESULT_WRITER_FAILED = "States.ResultWriterFailed"


def map_run_arn(machine: str, state: dict[str, Any]) -> str:
    """A new Map Run's ARN, as MapRunStarted names it: the machine, the Map's Label (else an id), an id."""
    label = state.get("Label") or str(uuid.uuid4())
    return f"arn:aws:states:{REGION}:{ACCOUNT}:mapRun:{machine}/{label}:{uuid.uuid4()}"


def refusal(state: dict[str, Any]) -> StatesError | None:
    """The error a Map run fails with because it needs what redstep does not have, or None."""
    reader = state.get("ItemReader")
    if reader is not None:
        resource = reader.get("Resource", "(none)")
        return StatesError(
            ITEM_READER_FAILED,
            f"redstep has no Amazon S3: the ItemReader cannot read items from {resource}. "
            "Give the items in the state's input instead, and select them with ItemsPath (or Items).",
        )
    writer = state.get("ResultWriter")
    if writer is None:
        return None
    if "Resource" in writer:
        return StatesError(
            RESULT_WRITER_FAILED,
            f"redstep has no Amazon S3: the ResultWriter cannot write results with {writer['Resource']}. "
            "Leave the Resource out to get the results as the Map's output.",
        )
    if (writer.get("WriterConfig") or {}).get("Transformation") == "NONE":
        return StatesError(
            RESULT_WRITER_FAILED,
            "Transformation NONE returns each child workflow execution's metadata, and redstep runs a "
            "Distributed Map's children inside their execution, without ARNs of their own: use COMPACT "
            "or FLATTEN.",
        )
    return None


def written(state: dict[str, Any], results: list[Any]) -> list[Any]:
    """The Map's results as its ResultWriter's WriterConfig shapes them (FLATTEN spreads arrays)."""
    writer = state.get("ResultWriter")
    if writer is None or (writer.get("WriterConfig") or {}).get("Transformation") != "FLATTEN":
        return results
    flat: list[Any] = []
    for result in results:
        if isinstance(result, list):
            flat.extend(result)
        else:
            flat.append(result)
    return flat


class Batcher:
    """What an ItemBatcher asks of one run of its Map: the limits and the evaluated BatchInput."""

    def __init__(self, data: StateData, selected: Any) -> None:
        batcher = data.state["ItemBatcher"]
        self.max_items = self._limit(data, selected, batcher, "MaxItemsPerBatch")
        max_bytes = self._limit(data, selected, batcher, "MaxInputBytesPerBatch")
        self.max_bytes = min(max_bytes or PAYLOAD_LIMIT_BYTES, PAYLOAD_LIMIT_BYTES)
        self.declared = "BatchInput" in batcher
        self.batch_input: Any = None
        if self.declared:
            template = batcher["BatchInput"]
            if data.jsonata:
                self.batch_input = data.evaluate_jsonata(template, "BatchInput")
            else:
                self.batch_input = payload.fill_template(template, data.scope(selected), "BatchInput")

    @staticmethod
    def _limit(data: StateData, selected: Any, batcher: dict[str, Any], field: str) -> int | None:
        if field in batcher:
            value = batcher[field]
            if not (data.jsonata and isinstance(value, str)):
                return int(value)
            expression = value.strip()[2:-2].strip()
            value = data.evaluate_jsonata(value, field)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 1 or value % 1:
                rendered = json.dumps(value, separators=(",", ":"))
                raise StatesError(
                    errors.QUERY_EVALUATION_ERROR,
                    f"The JSONata expression '{expression}' specified for the field '{field}' returned an "
                    f"unexpected result type. Expected 'positive integer', but was '{json_type(value)}' "
                    f"for value: {rendered}",
                )
            return int(value)
        path_field = f"{field}Path"
        if path_field not in batcher:
            return None
        path = batcher[path_field]
        raw = data.resolve(selected)(path)
        number = _positive_integer(raw)
        if number is None:
            shown = raw if isinstance(raw, str) else json.dumps(raw, separators=(",", ":"))
            raise StatesError(
                errors.RUNTIME,
                f'The {path_field} field refers to value "{shown}" which is not a valid positive integer: '
                f"{path}",
            )
        return number

    def child_input(self, items: list[Any]) -> dict[str, Any]:
        """One child's input: the batch's items, with the BatchInput when it is declared."""
        return batch(items, *([self.batch_input] if self.declared else []))

    def batch_ends(self, item_inputs: list[Any]) -> list[int]:
        """Where each batch ends in ``item_inputs``: the index after its last item, batch by batch."""
        ends: list[int] = []
        empty = payload_bytes(self.child_input([]))
        size, count = empty, 0
        for index, item in enumerate(item_inputs):
            added = payload_bytes(item) + (1 if count else 0)  # the comma before it
            full = self.max_items is not None and count >= self.max_items
            if count and (full or size + added > self.max_bytes):
                ends.append(index)
                size, count = empty, 0
                added -= 1
            size += added
            count += 1
        if count:
            ends.append(len(item_inputs))
        return ends


def batch(items: list[Any], *batch_input: Any) -> dict[str, Any]:
    """A child's input for a batch of ``items``: ``{"BatchInput": ..., "Items": [...]}``, BatchInput
    first (as AWS writes it) and only when one is given."""
    return {"BatchInput": batch_input[0], "Items": items} if batch_input else {"Items": items}


def _positive_integer(value: Any) -> int | None:
    """A path's value as a positive integer; AWS also takes numeric text such as "2" here."""
    number = numeric(value, integral=True)
    return int(number) if number is not None and number >= 1 else None
