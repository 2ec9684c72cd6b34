"""AWS's limits on workflow variables, checked whenever an ``Assign`` sets some.

"Passing data between states with variables" (Developer Guide,
https://docs.aws.amazon.com/step-functions/latest/dg/workflow-variables.html#limits):
"The maximum size of a single variable is 256Kib, for both Standard and Express workflows.
The maximum combined size for all variables in a single Assign field is also 256Kib. For
example, you could assign X and Y to 128KiB, but you could not assign both X and Y to 256KiB
in the same Assign field. The total size of all stored variables cannot exceed 10MiB per
execution."

The page names no error for a variable over a limit. The one error AWS names for data over a
size quota is States.DataLimitExceeded ("Handling errors in Step Functions workflows",
concepts-error-handling.html), a terminal error that States.ALL does not catch, so that is
what an Assign over a limit raises. Sizes are measured as the payload limit is: bytes of
compact UTF-8 JSON (``json_values``). A combined size is the sum of the values' sizes, so
that two variables of exactly 128 KiB fit in one Assign, as the page's example says.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.asl import errors
from orchestrator.asl.json_values import NO_BOUND, payload_bound
from orchestrator.asl.task_state import ReportedError

VARIABLE_LIMIT_BYTES = 256 * 1024
ASSIGN_LIMIT_BYTES = 256 * 1024
EXECUTION_LIMIT_BYTES = 10 * 1024 * 1024

_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def check_assignment(state: str, assignments: Mapping[str, Any], stored: Mapping[str, Any]) -> None:
    """Raise States.DataLimitExceeded if ``assignments``, made by ``state``, break a limit.

    ``stored`` is every variable the assigning scope holds before the assignment (its own and
    those of the scopes around it); the assignments replace any of the same name.
    """
    for name, value in assignments.items():
        if _over((value,), VARIABLE_LIMIT_BYTES):
            raise _error(
                f"The variable '{name}' assigned by the state '{state}' has a size exceeding the maximum "
                f"number of bytes service limit ({VARIABLE_LIMIT_BYTES})."
            )
    assigned = list(assignments.values())
    if len(assigned) > 1 and _over(assigned, ASSIGN_LIMIT_BYTES):
        raise _error(
            f"The variables assigned by the state '{state}' have a combined size exceeding the maximum "
            f"number of bytes service limit ({ASSIGN_LIMIT_BYTES})."
        )
    kept = [value for name, value in stored.items() if name not in assignments]
    if _over(assigned + kept, EXECUTION_LIMIT_BYTES):
        raise _error(
            f"The variables assigned by the state '{state}' bring the total size of the execution's "
            f"variables over the maximum number of bytes service limit ({EXECUTION_LIMIT_BYTES})."
        )


def _error(cause: str) -> ReportedError:
    # A limit the data broke, worded without the "An error occurred while executing the
    # state" prefix, as the payload limit's cause is (``task_state.data_limit_error``).
    return ReportedError(errors.DATA_LIMIT_EXCEEDED, cause)


def _over(values: Sequence[Any], limit: int) -> bool:
    """Whether ``values`` as compact UTF-8 JSON come to more than ``limit`` bytes together.

    Encoding every assigned value would cost more than the Assign itself, so cheap bounds
    (``payload_bound``: characters of at most six bytes each) decide first; the values are
    encoded only when their bounds do not fit.
    """
    bounded = 0
    for value in values:
        bound = payload_bound(value)
        if bound >= NO_BOUND:
            break
        bounded += 6 * bound
        if bounded > limit:
            break
    else:
        return False
    return sum(len(_COMPACT.encode(value).encode()) for value in values) > limit
