"""One way to invoke a function, shared by the workers and the local runner so they cannot disagree.

:func:`invoke` makes Lambda's ``(event, context)`` call and turns whatever happens into the
outcome a task reports, as AWS Lambda's Python runtime would:

- a return value travels as JSON; one JSON cannot carry fails with ``Runtime.MarshalError``
  (see :func:`marshalled`: bytes are sent as they are, so bytes of JSON text give that JSON);
- an ``Exception`` fails with an error named after its class and Lambda's error document
  (errorMessage, errorType, requestId, stackTrace) as the cause;
- ``sys.exit()`` or another ``BaseException`` would end Lambda's runtime process mid-invocation,
  which Lambda reports as ``Runtime.ExitError`` ("Runtime exited with error: exit status 3");
  here it fails the one task, never the process that runs it;
- what belongs to the process running the function, not to the function, is let through:
  the exceptions the caller names (a worker's cold shutdown, RQ's job timeout) and a
  KeyboardInterrupt wherever it may be a real Ctrl-C (see :func:`may_be_real_interrupt`).

Every Lambda error document is built here, by :func:`error_document`.
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict

from orchestrator.protocol.decoding import strict_loads
from orchestrator.protocol.tasks import function_arn, function_not_found

if TYPE_CHECKING:  # only named: the local runner, which has no Redis, need not import redis
    from redis import Redis

FUNCTION_TIMEOUT_SECONDS = 900.0
"""How long a function may run: Lambda's longest timeout, which every task is given."""

DEFAULT_MEMORY_LIMIT_IN_MB = 128
MARSHAL_ERROR = "Runtime.MarshalError"
EXIT_ERROR = "Runtime.ExitError"

Function = Callable[[Any, Any], Any]
"""A function with the Lambda handler signature ``(event, context)``."""

# Errors json.dumps raises for a value JSON cannot carry.
NOT_JSON = (TypeError, ValueError, RecursionError)


class Outcome(TypedDict):
    """How one invocation went: a TaskSucceeded or TaskFailed report without its address."""

    type: Literal["TaskSucceeded", "TaskFailed"]
    output: NotRequired[Any]
    error: NotRequired[str]
    cause: NotRequired[str]


class LambdaContext:
    """What Lambda's runtime passes as ``context``, plus where redstep keeps a function's data.

    Attributes:
        function_name: the registered name of the running function.
        invoked_function_arn: the ARN the state machine's Task named.
        aws_request_id: unique per invocation (made when first read).
        deadline: the ``clock()`` reading at which the invocation's time runs out.
        clock: the time source the remaining time counts down on: a worker's monotonic
            clock, or the local runner's virtual one.
        redis: the connection to the function's data, when it has any.
        prefix: the key prefix every redstep key starts with.
        execution: the name of the execution that scheduled this invocation.
        attempt: which attempt of the task this is, as the task message numbers it.
    """

    __slots__ = (
        "_request_id",
        "attempt",
        "clock",
        "deadline",
        "execution",
        "function_name",
        "invoked_function_arn",
        "prefix",
        "redis",
    )

    # The same for every invocation here, as Lambda's are for a function without versions.
    function_version = "$LATEST"
    memory_limit_in_mb = DEFAULT_MEMORY_LIMIT_IN_MB
    identity: object | None = None
    client_context: object | None = None

    def __init__(
        self,
        function_name: str,
        invoked_function_arn: str = "",
        deadline: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        execution: str = "",
        attempt: int = 0,
        redis: Redis | None = None,
        prefix: str = "redstep",
    ) -> None:
        # Made for every call the local runner makes: plain assignments, the rarely given last.
        self.function_name = function_name
        self.invoked_function_arn = invoked_function_arn or function_arn(function_name)
        self.deadline = clock() + FUNCTION_TIMEOUT_SECONDS if deadline is None else deadline
        self.clock = clock
        self.redis = redis
        self.prefix = prefix
        self.execution = execution
        self.attempt = attempt
        self._request_id: str | None = None

    @property
    def aws_request_id(self) -> str:
        # Made on first read: most invocations never read it, and a UUID costs more than the call.
        if self._request_id is None:
            self._request_id = str(uuid.uuid4())
        return self._request_id

    @property
    def log_group_name(self) -> str:
        """The CloudWatch log group Lambda would write to, kept for code that reads it."""
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        """A per-invocation log stream name in Lambda's ``date/[version]id`` form."""
        return f"{time.strftime('%Y/%m/%d')}/[{self.function_version}]{self.aws_request_id.replace('-', '')}"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation times out (never negative)."""
        return max(0, int((self.deadline - self.clock()) * 1000))


def invoke(
    function: Function | None,
    event: Any,
    context: LambdaContext,
    let_through: tuple[type[BaseException], ...] = (),
) -> Outcome:
    """Call ``function(event, context)`` and say how it went, as Lambda would report it.

    Args:
        function: the registered function, or None when nobody registered the name.
        event: the event the function receives (the caller's to copy, if it must).
        context: the function's ``context``.
        let_through: exceptions of the process running the function, raised on unchanged.

    Returns:
        A TaskSucceeded outcome whose output is what JSON makes of the result, or a TaskFailed one.
    """
    if function is None:
        return failed(*function_not_found(context.invoked_function_arn))
    try:
        result = function(event, context)
    except let_through:
        raise
    except Exception as exc:
        return failed(*function_error(exc, context.aws_request_id))
    except KeyboardInterrupt as exc:
        if may_be_real_interrupt():
            raise
        return failed(*exit_error(exc, context.aws_request_id))
    except BaseException as exc:  # sys.exit() and the like: the function's own end, not the process's
        return failed(*exit_error(exc, context.aws_request_id))
    try:
        return {"type": "TaskSucceeded", "output": marshalled(result)}
    except NOT_JSON as exc:
        return failed(*marshal_error(exc, context.aws_request_id))


def failed(error: str, cause: str) -> Outcome:
    """A TaskFailed outcome."""
    return {"type": "TaskFailed", "error": error, "cause": cause}


def may_be_real_interrupt() -> bool:
    """Whether a KeyboardInterrupt may be a Ctrl-C the process received, not the function's own raise.

    Python turns SIGINT into KeyboardInterrupt only through its default handler, and only in
    the main thread. A worker handles SIGINT itself (worker.shutdown), so there a
    KeyboardInterrupt is the function's; where the default handler is in place (the local
    runner in a terminal) the two cannot be told apart, and a Ctrl-C must never be swallowed.
    """
    return (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )


# -- Lambda's error document ----------------------------------------------------------------------


def error_document(
    error_type: str, message: str, request_id: str | None = None, stack_trace: list[str] | None = None
) -> str:
    """Lambda's JSON error document: the cause of every Lambda error a task reports."""
    return json.dumps(
        {
            "errorMessage": message,
            "errorType": error_type,
            "requestId": request_id or str(uuid.uuid4()),
            "stackTrace": stack_trace or [],
        }
    )


def function_error(exc: BaseException, request_id: str | None = None) -> tuple[str, str]:
    """The ASL error and cause for a function that raised ``exc``: its class name and Lambda's document.

    The stack trace starts at the function: the frame that called it is the runtime's, not the
    user's, as on Lambda. An exception that cannot render its message still gets a document.
    """
    error = type(exc).__name__
    try:
        message = str(exc)
    except Exception:
        message = f"<{error} whose message could not be rendered>"
    try:
        frames = traceback.format_tb(exc.__traceback__.tb_next if exc.__traceback__ else None)
    except Exception:
        frames = []
    return error, error_document(error, message, request_id, frames)


def marshal_error(exc: BaseException, request_id: str | None = None) -> tuple[str, str]:
    """The ASL error and cause for a result JSON cannot carry, as Lambda's Python runtime words it."""
    return MARSHAL_ERROR, error_document(MARSHAL_ERROR, f"Unable to marshal response: {exc}", request_id)


def exit_error(exc: BaseException, request_id: str | None = None) -> tuple[str, str]:
    """The ASL error and cause for a function that ended its runtime (``sys.exit()`` and the like).

    Lambda words it by how the process ended: "Runtime exited with error: exit status 3",
    "... signal: interrupt" (an uncaught KeyboardInterrupt), or "Runtime exited without
    providing a reason" (status 0).
    """
    request_id = request_id or str(uuid.uuid4())
    how = exit_status(exc)
    if how == "exit status 0":
        message = f"RequestId: {request_id} Error: Runtime exited without providing a reason"
    else:
        message = f"RequestId: {request_id} Error: Runtime exited with error: {how}"
    return EXIT_ERROR, error_document(EXIT_ERROR, message, request_id)


def exit_status(exc: BaseException) -> str:
    """How a Python process that ``exc`` ended would have ended, in Go's words (Lambda's service)."""
    if isinstance(exc, KeyboardInterrupt):
        return "signal: interrupt"  # Python ends on an uncaught KeyboardInterrupt by SIGINT
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None:
            return "exit status 0"
        if isinstance(code, int):
            return f"exit status {code & 0xFF}"
    return "exit status 1"  # a printed message or traceback, then status 1


# -- payload marshalling -------------------------------------------------------------------------


class _NotPlainJson(Exception):
    """A value holds something other than JSON's own types, exactly."""


# Python refuses to turn an int of more than 4300 digits into text, so JSON cannot carry it.
_LARGEST_PLAIN_INT = 10**4000


def json_copy(value: Any, *, allow_nan: bool = True) -> Any:
    """What ``value`` becomes after a trip through JSON text, as a task's payload and result make.

    A value made only of dicts with string keys, lists, strings, finite numbers, booleans
    and None comes back as an equal copy; copying it directly costs a fraction of encoding
    and decoding it. Anything else takes the real trip, which converts or refuses it as
    JSON does.

    Raises:
        TypeError, ValueError, RecursionError: as ``json.dumps`` does for what JSON cannot carry.
    """
    try:
        return _plain_copy(value)
    except (_NotPlainJson, RecursionError):
        return json.loads(json.dumps(value, allow_nan=allow_nan))


def marshalled(result: Any) -> Any:
    """What a function's result becomes on its way to the orchestrator: ``json_copy`` without NaN.

    As Lambda's Python runtime marshals a handler's return value ("Define Lambda function
    handler in Python", AWS Lambda Developer Guide: the value "must be JSON serializable"):
    None becomes null, a str is a JSON string even when its text is JSON, a tuple an array.
    ``bytes`` are the one exception: the runtime sends them as the response body unchanged,
    and Step Functions reads that body as JSON, so bytes holding JSON text give its value.

    Raises:
        TypeError, ValueError, RecursionError: for a result JSON cannot carry (bytes that
            are not UTF-8 JSON text among them).
    """
    # json_copy's fast path, called directly: this runs once per task, in the local runner's hot loop.
    try:
        return _plain_copy(result)
    except (_NotPlainJson, RecursionError):
        if isinstance(result, (bytes, bytearray)):
            return _raw_body(bytes(result))
        return json.loads(json.dumps(result, allow_nan=False))


def _raw_body(body: bytes) -> Any:
    """The JSON value a raw response body holds.

    Raises:
        ValueError: when the body is not UTF-8 JSON text.
    """
    try:
        return strict_loads(body.decode("utf-8"))
    except ValueError:
        raise ValueError(f"the {len(body)} bytes returned are not UTF-8 JSON text") from None


_TAKEN_AS_THEY_ARE = frozenset({str, bool, type(None)})


def _plain_copy(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is dict:
        copy = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlainJson
            # Strings, booleans and nulls are most of what a payload holds: taken as they
            # are, they save a call each.
            copy[key] = item if type(item) in _TAKEN_AS_THEY_ARE else _plain_copy(item)
        return copy
    if kind is list:
        return [item if type(item) in _TAKEN_AS_THEY_ARE else _plain_copy(item) for item in value]
    if kind is int and -_LARGEST_PLAIN_INT < value < _LARGEST_PLAIN_INT:
        return value
    if kind is float and math.isfinite(value):
        return value
    raise _NotPlainJson
