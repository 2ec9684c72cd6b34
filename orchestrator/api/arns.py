"""ARNs of state machines and executions in the configured region and account, and names AWS allows."""

from __future__ import annotations

import re
from dataclasses import dataclass

from orchestrator.api.errors import ApiError

# AWS forbids in names: white space, brackets < > { } [ ], wildcards ? *, the specials
# " # % \ ^ | ~ ` $ & , ; : /, control characters and surrogates.
FORBIDDEN_IN_NAMES = re.compile(r"[\s<>{}\[\]?*\"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f\ufffe\uffff\ud800-\udfff]")


def name_problem(name: str) -> str:
    """Why AWS refuses ``name`` for a state machine or execution; ``""`` when it accepts it."""
    if not 1 <= len(name) <= 80:
        return "must be 1 to 80 characters long"
    forbidden = FORBIDDEN_IN_NAMES.search(name)
    if forbidden:
        return (
            f"must not contain {forbidden.group()!r}: AWS forbids white space, brackets, wildcards,"
            ' the characters " # % \\ ^ | ~ ` $ & , ; : / and control characters'
        )
    return ""


@dataclass(frozen=True)
class Arns:
    """Builds and reads ``arn:aws:states:<region>:<account>:...`` ARNs."""

    region: str
    account: str

    @property
    def prefix(self) -> str:
        return f"arn:aws:states:{self.region}:{self.account}:"

    def state_machine(self, name: str) -> str:
        return f"{self.prefix}stateMachine:{name}"

    def execution(self, machine: str, name: str) -> str:
        return f"{self.prefix}execution:{machine}:{name}"

    def activity(self, name: str) -> str:
        return f"{self.prefix}activity:{name}"

    def activity_name(self, arn: str) -> str:
        """The activity an ``activity:<name>`` ARN names.

        Raises:
            ApiError: InvalidArn, saying what is wrong with it.
        """
        return self._parts(arn, "activity", 1)[0]

    def state_machine_name(self, arn: str) -> str:
        """The machine a ``stateMachine:<name>`` ARN names.

        Raises:
            ApiError: InvalidArn, saying what is wrong with it.
        """
        return self._parts(arn, "stateMachine", 1)[0]

    def execution_names(self, arn: str) -> tuple[str, str]:
        """The machine and execution names of an ``execution:<machine>:<name>`` ARN.

        Raises:
            ApiError: InvalidArn, saying what is wrong with it.
        """
        machine, name = self._parts(arn, "execution", 2)
        return machine, name

    def _parts(self, arn: str, resource: str, count: int) -> list[str]:
        fields = arn.split(":")
        expected = f"arn:aws:states:{self.region}:{self.account}:{resource}:" + ":".join(
            f"<{n}>" for n in ("machine", "name")[2 - count :]
        )
        if len(fields) < 6 or fields[:3] != ["arn", "aws", "states"]:
            raise ApiError("InvalidArn", f"Invalid Arn: '{arn}': expected {expected}")
        if fields[3] != self.region or fields[4] != self.account:
            raise ApiError(
                "InvalidArn",
                f"Invalid Arn: '{arn}': it names region {fields[3]!r} and account {fields[4]!r}, but this"
                f" endpoint serves region {self.region!r} and account {self.account!r}",
            )
        if fields[5] != resource or len(fields) != 6 + count:
            qualified = " (versions and aliases are not supported)" if len(fields) > 6 + count else ""
            raise ApiError("InvalidArn", f"Invalid Arn: '{arn}': expected {expected}{qualified}")
        names = fields[6:]
        for name in names:
            if problem := name_problem(name):
                raise ApiError("InvalidArn", f"Invalid Arn: '{arn}': the name {name!r} {problem}")
        return names
