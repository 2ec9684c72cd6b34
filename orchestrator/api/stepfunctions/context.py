"""What every Step Functions handler works with, and the look-ups they share."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from orchestrator.api.arns import Arns
from orchestrator.api.errors import ApiError
from orchestrator.api.pagination import PageTokens
from orchestrator.api.shapes import ServiceShapes
from orchestrator.runtime.catalog import Catalog, MachineEntry
from orchestrator.runtime.client import Client

DEFAULT_PAGE_SIZE = 100


@dataclass(frozen=True)
class StepFunctions:
    """The runtime and the endpoint's configuration, handed to every handler."""

    client: Client
    catalog: Catalog
    arns: Arns
    tokens: PageTokens
    shapes: ServiceShapes

    @property
    def default_role_arn(self) -> str:
        return f"arn:aws:iam::{self.arns.account}:role/redstep"

    def machine(self, arn: str) -> MachineEntry:
        """The state machine an ARN names.

        Raises:
            ApiError: InvalidArn, or StateMachineDoesNotExist for a well-formed ARN of none.
        """
        entry = self.catalog.get(self.arns.state_machine_name(arn), time.time())
        if entry is None:
            raise ApiError("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{arn}'")
        return entry

    def execution(self, arn: str) -> dict[str, Any]:
        """The execution an ARN names, as the runtime describes it.

        Raises:
            ApiError: InvalidArn, or ExecutionDoesNotExist for a well-formed ARN of none
                (an execution of that name that belongs to another machine is not this one).
        """
        machine, name = self.arns.execution_names(arn)
        described = self.client.describe(name)
        if described is None or described["stateMachine"] != machine:
            raise ApiError("ExecutionDoesNotExist", f"Execution Does Not Exist: '{arn}'")
        return described

    def execution_arn(self, described: dict[str, Any]) -> str:
        return self.arns.execution(described["stateMachine"], described["name"])


def page_size(request: dict[str, Any]) -> int:
    """``maxResults``, where 0 or nothing means AWS's default page of 100."""
    return request.get("maxResults") or DEFAULT_PAGE_SIZE
