"""Errors of the Amazon States Language, named as ASL names them.

An ``StatesError`` is what a state raises when its execution must fail with an ASL error
(``States.Runtime``, ``States.IntrinsicFailure``, ...): it carries the error name and the
cause exactly as AWS words them, and the engine turns it into a failed state that Retry and
Catch may handle. ``DefinitionError`` is raised before any execution starts, for a state
machine definition that is not valid ASL.
"""

from __future__ import annotations

from dataclasses import dataclass

# The error names the core raises or matches on. The specification names others
# (States.BranchFailed, States.ParameterPathFailure, ...) that AWS does not raise at run time
# (a failed branch fails its Parallel with the branch's own error), and neither does redstep.
ALL = "States.ALL"
TASK_FAILED = "States.TaskFailed"
RUNTIME = "States.Runtime"
NO_CHOICE_MATCHED = "States.NoChoiceMatched"
TIMEOUT = "States.Timeout"
HEARTBEAT_TIMEOUT = "States.HeartbeatTimeout"
DATA_LIMIT_EXCEEDED = "States.DataLimitExceeded"
INTRINSIC_FAILURE = "States.IntrinsicFailure"
RESULT_PATH_MATCH_FAILURE = "States.ResultPathMatchFailure"
EXCEED_TOLERATED_FAILURE_THRESHOLD = "States.ExceedToleratedFailureThreshold"
QUERY_EVALUATION_ERROR = "States.QueryEvaluationError"

# Errors that States.ALL (and States.TaskFailed) does not catch or retry; a Retry or Catch
# that names one of them still matches it. States.Runtime: the ASL specification.
# States.DataLimitExceeded: "Handling errors in Step Functions workflows" (Developer Guide,
# https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html) says
# "The States.ALL error type ... can't catch the States.DataLimitExceeded terminal error" and
# calls it "A terminal error that can't be caught by the States.ALL error type". AWS's
# recorded executions show one exception, a task whose result is over the limit: see
# ``StatesError.matched_by_all``.
NOT_MATCHED_BY_ALL = frozenset({RUNTIME, DATA_LIMIT_EXCEEDED})


class StatesError(Exception):
    """An ASL error raised while running a state: ``error`` is its name, ``cause`` its text.

    ``matched_by_all`` makes States.ALL match an error of ``NOT_MATCHED_BY_ALL`` all the same:
    AWS catches a task's result over the payload limit with States.ALL (the recorded
    executions in ../shared/conformance, ``*_catch_state_all_data_limit_exceeded_*``), while a
    state's own input or output over it is terminal, as the Developer Guide says.
    """

    def __init__(self, error: str, cause: str | None = None, *, matched_by_all: bool = False) -> None:
        super().__init__(f"{error}: {cause}" if cause else error)
        self.error = error
        self.cause = cause
        self.matched_by_all = matched_by_all


class PathNotFound(Exception):
    """A reference path or JSONPath selected nothing in the document it was applied to.

    Callers turn it into the ``StatesError`` whose wording fits where the path was used
    (InputPath, a ``.$`` field, a Choice variable, ...).
    """

    def __init__(self, path: str, document: object = None) -> None:
        super().__init__(path)
        self.path = path
        self.document = document


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition: where (a JSON path such as ``/States/A/Next``) and what."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class DefinitionError(ValueError):
    """A state machine definition that is not valid ASL; ``problems`` lists every finding."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid state machine definition ({len(problems)} problem(s)):\n{lines}")
