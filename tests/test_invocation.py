"""One invocation path: the same functions give the same outcomes in the local runner and on a worker.

The functions below run through the local runner in this process and through a real worker
process on a real Redis stack (the worker loads this very file with ``--functions``: only
the ``(event, context)`` handlers register). What a user reads of each execution (status,
output, error, and the cause's errorType and errorMessage) must be equal both ways; only
request ids differ. The unit tests at the end pin down the wording, which is Lambda's.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.asl.definition import StateMachine
from orchestrator.local import LocalRunner
from orchestrator.protocol.invocation import (
    FUNCTION_TIMEOUT_SECONDS,
    LambdaContext,
    Outcome,
    error_document,
    exit_error,
    invoke,
)
from orchestrator.runtime.server import RedisServer
from tests.conformance.stack import Stack, running_stack, stack_settings

THIS_FILE = Path(__file__).resolve()
LAMBDA = "arn:aws:lambda:us-east-1:000000000000:function:"
PREFIX = "inv"
WAIT_SECONDS = 60.0
HUGE_CHARACTERS = 300_000  # over Step Functions' 256 KiB payload limit
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class DragonTooSmall(Exception):
    """A function's own exception: its class name becomes the error."""


class Interrupted(BaseException):
    """A BaseException that is neither an Exception nor SystemExit."""


# -- the functions: both the local runner and the worker run exactly these ----------------------


def returns_a_value(event: Any, context: Any) -> dict[str, Any]:
    return {"doubled": event["n"] * 2, "ok": True, "nothing": None}


def raises_value_error(event: Any, context: Any) -> None:
    raise ValueError(f"bad value {event['n']}")


def raises_its_own_exception(event: Any, context: Any) -> None:
    raise DragonTooSmall("Smok is too small")


def calls_sys_exit(event: Any, context: Any) -> None:
    sys.exit(3)


def calls_sys_exit_without_a_status(event: Any, context: Any) -> None:
    sys.exit()


def raises_keyboard_interrupt(event: Any, context: Any) -> None:
    raise KeyboardInterrupt


def raises_a_base_exception(event: Any, context: Any) -> None:
    raise Interrupted("not an Exception")


def returns_a_set(event: Any, context: Any) -> set[int]:
    return {1, 2}


def returns_nan(event: Any, context: Any) -> float:
    return float("nan")


def returns_a_huge_payload(event: Any, context: Any) -> str:
    return "x" * HUGE_CHARACTERS


def returns_none(event: Any, context: Any) -> None:
    return None


def returns_json_bytes(event: Any, context: Any) -> bytes:
    return b'{"doubled": 42, "text": "HelloWorld!"}'


def returns_json_text(event: Any, context: Any) -> str:
    return '{"doubled": 42}'


def returns_a_tuple_with_int_keys(event: Any, context: Any) -> tuple[Any, ...]:
    return (1, {2: "two"}, 3.5, True)


def returns_bytes_that_are_not_json(event: Any, context: Any) -> bytes:
    return b"\xff\xfe not json"


def reads_its_context(event: Any, context: Any) -> dict[str, Any]:
    first = context.get_remaining_time_in_millis()
    second = context.get_remaining_time_in_millis()
    full = int(FUNCTION_TIMEOUT_SECONDS * 1000)
    return {
        "function_name": context.function_name,
        "invoked_function_arn": context.invoked_function_arn,
        "attempt": context.attempt,
        "request_id_is_a_uuid": bool(_UUID.fullmatch(context.aws_request_id)),
        "remaining_within_the_timeout": 0 < second <= first <= full,
        # A minute's slack: the worker's clock runs from when its job started.
        "remaining_counted_from_the_timeout": first > full - 60_000,
    }


def _functions() -> dict[str, Any]:
    handlers = [
        returns_a_value,
        raises_value_error,
        raises_its_own_exception,
        calls_sys_exit,
        calls_sys_exit_without_a_status,
        raises_keyboard_interrupt,
        raises_a_base_exception,
        returns_a_set,
        returns_nan,
        returns_a_huge_payload,
        returns_none,
        returns_json_bytes,
        returns_json_text,
        returns_a_tuple_with_int_keys,
        returns_bytes_that_are_not_json,
        reads_its_context,
    ]
    return {fn.__name__: fn for fn in handlers}


FUNCTIONS = _functions()
# What each function is called with; ``nobody_registered_this`` names no function at all.
CALLS = {**{name: {"n": 21} for name in FUNCTIONS}, "nobody_registered_this": {"n": 21}}


def one_task(function: str) -> dict[str, Any]:
    return {
        "StartAt": "Call",
        "States": {"Call": {"Type": "Task", "Resource": LAMBDA + function, "End": True}},
    }


def comparable(status: str, output: Any, error: str | None, cause: str | None) -> dict[str, Any]:
    """What a user reads of an execution, with request ids (which differ every run) set aside."""
    document: Any = cause
    if cause is not None:
        try:
            document = json.loads(cause)
        except ValueError:
            document = cause
    if isinstance(document, dict):
        frames = document.get("stackTrace")
        document = {
            "errorType": document["errorType"],
            "errorMessage": _UUID.sub("<request id>", document["errorMessage"]),
            "has requestId": bool(document.get("requestId")),
            # The frames name the same file either way; the count says both start at the function.
            "stack frames": len(frames) if isinstance(frames, list) else frames,
        }
    elif isinstance(document, str):
        document = _UUID.sub("<request id>", document)
    return {"status": status, "output": output, "error": error, "cause": document}


def run_locally(function: str, event: Any) -> dict[str, Any]:
    machine = StateMachine.parse(one_task(function), name=f"local-{function}")
    result = LocalRunner(machine, FUNCTIONS).run(event)
    return comparable(result.status, result.output, result.error, result.cause)


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An orchestrator and one worker process that loaded this file's functions."""
    settings, env = stack_settings(redis_server.url, PREFIX)
    with running_stack(settings, env, [THIS_FILE], tmp_path_factory.mktemp("workers"), workers=1) as running:
        yield running


@pytest.fixture(scope="module")
def on_the_stack(stack: Stack) -> dict[str, dict[str, Any]]:
    """Every call run on the stack, all started at once, by function name."""
    started = {}
    for function, event in CALLS.items():
        machine = f"stack-{function}-{uuid.uuid4().hex[:6]}"
        stack.client.register_machine(machine, one_task(function))
        started[function] = stack.client.start_execution(machine, event)
    results = {}
    for function, name in started.items():
        try:
            described = stack.client.wait(name, timeout=WAIT_SECONDS)
        except TimeoutError as exc:
            pytest.fail(f"{function}: {exc}\n{stack.logs_tail()}")
        results[function] = comparable(
            described["status"], described.get("output"), described.get("error"), described.get("cause")
        )
    return results


@pytest.mark.parametrize("function", list(CALLS))
def test_a_function_gives_the_same_outcome_locally_and_on_a_worker(
    function: str, on_the_stack: dict[str, dict[str, Any]], request: pytest.FixtureRequest
) -> None:
    if function == "raises_keyboard_interrupt":
        # A worker handles SIGINT itself; so must this process, or the interrupt would be let through.
        request.getfixturevalue("sigint_handled_by_the_process")
    assert run_locally(function, CALLS[function]) == on_the_stack[function]


EXPECTED = {
    "returns_a_value": ("SUCCEEDED", None, None),
    "raises_value_error": ("FAILED", "ValueError", "bad value 21"),
    "raises_its_own_exception": ("FAILED", "DragonTooSmall", "Smok is too small"),
    "calls_sys_exit": (
        "FAILED",
        "Runtime.ExitError",
        "RequestId: <request id> Error: Runtime exited with error: exit status 3",
    ),
    "calls_sys_exit_without_a_status": (
        "FAILED",
        "Runtime.ExitError",
        "RequestId: <request id> Error: Runtime exited without providing a reason",
    ),
    "raises_keyboard_interrupt": (
        "FAILED",
        "Runtime.ExitError",
        "RequestId: <request id> Error: Runtime exited with error: signal: interrupt",
    ),
    "raises_a_base_exception": (
        "FAILED",
        "Runtime.ExitError",
        "RequestId: <request id> Error: Runtime exited with error: exit status 1",
    ),
    "returns_a_set": (
        "FAILED",
        "Runtime.MarshalError",
        "Unable to marshal response: Object of type set is not JSON serializable",
    ),
    "returns_nan": (
        "FAILED",
        "Runtime.MarshalError",
        "Unable to marshal response: Out of range float values are not JSON compliant",
    ),
}


@pytest.mark.parametrize("function", list(EXPECTED))
def test_the_outcome_is_worded_as_lambda_words_it(function: str, sigint_handled_by_the_process: None) -> None:
    status, error, message = EXPECTED[function]

    outcome = run_locally(function, CALLS[function])

    assert (outcome["status"], outcome["error"]) == (status, error)
    if message is not None:
        assert outcome["cause"]["errorType"] == error
        assert outcome["cause"]["errorMessage"] == message
        assert outcome["cause"]["has requestId"]


MARSHALLED = {
    "returns_none": None,
    "returns_json_bytes": {"doubled": 42, "text": "HelloWorld!"},
    "returns_json_text": '{"doubled": 42}',
    "returns_a_tuple_with_int_keys": [1, {"2": "two"}, 3.5, True],
}


@pytest.mark.parametrize("function", list(MARSHALLED))
def test_a_return_value_becomes_what_lambdas_python_runtime_marshals_it_to(function: str) -> None:
    """ "Define Lambda function handler in Python" (AWS Lambda Developer Guide): the value a
    handler returns "must be JSON serializable", and the runtime serializes it with json.dumps:
    None is null, a str is a JSON string even when it holds JSON text, a tuple an array, int
    keys strings. Bytes are the runtime's one exception: sent as the response body unchanged,
    which Step Functions reads as JSON (conformance case test_invoke_bytes_payload)."""
    assert run_locally(function, {"n": 21})["status"] == "SUCCEEDED"
    assert run_locally(function, {"n": 21})["output"] == MARSHALLED[function]


def test_bytes_that_are_not_json_fail_to_marshal() -> None:
    outcome = run_locally("returns_bytes_that_are_not_json", {})

    assert outcome["error"] == "Runtime.MarshalError"
    assert outcome["cause"]["errorMessage"] == (
        "Unable to marshal response: the 11 bytes returned are not UTF-8 JSON text"
    )


INVOKE_SHAPE = {"ExecutedVersion", "Payload", "SdkHttpMetadata", "SdkResponseMetadata", "StatusCode"}
HEADERS = {
    "Connection",
    "Content-Length",
    "Content-Type",
    "Date",
    "X-Amz-Executed-Version",
    "x-amzn-Remapped-Content-Length",
    "x-amzn-RequestId",
    "X-Amzn-Trace-Id",
}


@pytest.mark.parametrize("function", list(MARSHALLED))
def test_lambda_invoke_wraps_the_marshalled_value_as_the_invoke_api_returns_it(function: str) -> None:
    """ "Invoke Lambda with Step Functions" (Step Functions Developer Guide, connect-lambda.html):
    "the function output is nested inside a dictionary of metadata" (ExecutedVersion, Payload,
    SdkHttpMetadata, SdkResponseMetadata, StatusCode), and "The Payload field of the response is
    parsed from escaped Json to Json"."""
    task = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": LAMBDA + function, "Payload.$": "$"},
        "End": True,
    }
    machine = StateMachine.parse({"StartAt": "Call", "States": {"Call": task}}, name="invoke")
    output = LocalRunner(machine, FUNCTIONS).run({"n": 21}).output

    assert set(output) == INVOKE_SHAPE
    assert (output["Payload"], output["StatusCode"], output["ExecutedVersion"]) == (
        MARSHALLED[function],
        200,
        "$LATEST",
    )
    metadata = output["SdkHttpMetadata"]
    assert set(metadata["HttpHeaders"]) == HEADERS == set(metadata["AllHttpHeaders"])
    assert metadata["HttpStatusCode"] == 200
    body = json.dumps(MARSHALLED[function], separators=(",", ":")).encode()
    assert metadata["HttpHeaders"]["Content-Length"] == str(len(body))
    request_id = output["SdkResponseMetadata"]["RequestId"]
    assert _UUID.fullmatch(request_id) and metadata["HttpHeaders"]["x-amzn-RequestId"] == request_id


def test_a_function_error_carries_a_stack_trace_that_starts_at_the_function() -> None:
    outcome = LocalRunner(StateMachine.parse(one_task("raises_value_error")), FUNCTIONS).run({"n": 1})

    frames = json.loads(outcome.cause or "")["stackTrace"]
    assert len(frames) == 1
    assert "in raises_value_error" in frames[0] and "raise ValueError" in frames[0]


def test_a_huge_result_exceeds_the_payload_limit_and_a_value_and_the_context_come_back() -> None:
    assert run_locally("returns_a_huge_payload", {})["error"] == "States.DataLimitExceeded"
    assert run_locally("returns_a_value", {"n": 21})["output"] == {"doubled": 42, "ok": True, "nothing": None}
    assert run_locally("reads_its_context", {})["output"] == {
        "function_name": "reads_its_context",
        "invoked_function_arn": LAMBDA + "reads_its_context",
        "attempt": 1,
        "request_id_is_a_uuid": True,
        "remaining_within_the_timeout": True,
        "remaining_counted_from_the_timeout": True,
    }


def test_a_function_nobody_registered_fails_as_lambda_says_so() -> None:
    outcome = run_locally("nobody_registered_this", {})

    assert outcome["error"] == "Lambda.ResourceNotFoundException"
    assert f"Function not found: {LAMBDA}nobody_registered_this:$LATEST" in outcome["cause"]


# -- KeyboardInterrupt: the function's own, or a real Ctrl-C ------------------------------------


@pytest.fixture
def sigint_handled_by_the_process() -> Iterator[None]:
    """SIGINT handled as a worker handles it (worker.shutdown): a Ctrl-C is never a KeyboardInterrupt."""
    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_keyboard_interrupt_the_function_raised_fails_its_task_where_sigint_is_handled(
    sigint_handled_by_the_process: None,
) -> None:
    functions = {"raises_keyboard_interrupt": raises_keyboard_interrupt}
    machine = StateMachine.parse(one_task("raises_keyboard_interrupt"))

    result = LocalRunner(machine, functions).run({})

    assert (result.status, result.error) == ("FAILED", "Runtime.ExitError")
    assert json.loads(result.cause or "")["errorMessage"].endswith(
        "Error: Runtime exited with error: signal: interrupt"
    )


def test_a_keyboard_interrupt_is_let_through_where_it_may_be_a_real_ctrl_c() -> None:
    """With Python's own SIGINT handler a Ctrl-C is a KeyboardInterrupt: it must stop the run."""
    # Python's own handler, as in a terminal, whatever an earlier test in this process installed.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    machine = StateMachine.parse(one_task("raises_keyboard_interrupt"))

    try:
        with pytest.raises(KeyboardInterrupt):
            LocalRunner(machine, {"raises_keyboard_interrupt": raises_keyboard_interrupt}).run({})
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_keyboard_interrupt_outside_the_main_thread_is_the_functions_own() -> None:
    """Python delivers a Ctrl-C to the main thread only: elsewhere the function raised it."""
    outcomes: list[Outcome] = []
    thread = threading.Thread(
        target=lambda: outcomes.append(invoke(raises_keyboard_interrupt, {}, LambdaContext("f")))
    )

    thread.start()
    thread.join()

    assert [outcome["error"] for outcome in outcomes] == ["Runtime.ExitError"]


def test_the_exceptions_the_caller_names_are_let_through() -> None:
    class WorkerStops(SystemExit):
        pass

    def stops(event: Any, context: Any) -> None:
        raise WorkerStops()

    with pytest.raises(WorkerStops):
        invoke(stops, {}, LambdaContext("stops"), let_through=(WorkerStops,))
    assert invoke(stops, {}, LambdaContext("stops"))["error"] == "Runtime.ExitError"


# -- the context and the error document ----------------------------------------------------------


def test_the_remaining_time_counts_down_on_the_clock_the_context_is_given() -> None:
    now = [1000.0]
    context = LambdaContext("f", deadline=1000.0 + 30, clock=lambda: now[0])

    assert context.get_remaining_time_in_millis() == 30_000
    now[0] += 12.5
    assert context.get_remaining_time_in_millis() == 17_500
    now[0] += 60
    assert context.get_remaining_time_in_millis() == 0


def test_a_local_function_is_timed_on_the_virtual_clock_from_its_call() -> None:
    """Virtual time stands still while a function runs: it always sees its whole timeout."""
    definition = {
        "StartAt": "Wait",
        "States": {
            "Wait": {"Type": "Wait", "Seconds": 3600, "Next": "Call"},
            "Call": {"Type": "Task", "Resource": LAMBDA + "remaining", "End": True},
        },
    }

    def remaining(event: Any, context: Any) -> int:
        return context.get_remaining_time_in_millis()

    result = LocalRunner(StateMachine.parse(definition), {"remaining": remaining}).run({}, start=0.0)

    assert result.output == FUNCTION_TIMEOUT_SECONDS * 1000


def test_the_error_document_names_the_request_that_failed() -> None:
    context = LambdaContext("f")

    outcome = invoke(raises_value_error, {"n": 1}, context)

    assert json.loads(outcome["cause"])["requestId"] == context.aws_request_id


def test_the_error_document_has_lambdas_four_fields() -> None:
    document = json.loads(error_document("Sandbox.Timedout", "Task timed out after 3.00 seconds", "r-1"))

    assert document == {
        "errorMessage": "Task timed out after 3.00 seconds",
        "errorType": "Sandbox.Timedout",
        "requestId": "r-1",
        "stackTrace": [],
    }


@pytest.mark.parametrize(
    ("code", "ending"),
    [
        (3, "exited with error: exit status 3"),
        (256 + 7, "exited with error: exit status 7"),
        (-1, "exited with error: exit status 255"),
        ("a message", "exited with error: exit status 1"),
        (0, "exited without providing a reason"),
        (None, "exited without providing a reason"),
    ],
)
def test_sys_exit_is_worded_by_the_status_the_process_would_have_ended_with(code: Any, ending: str) -> None:
    error, cause = exit_error(SystemExit(code), "r-1")

    assert error == "Runtime.ExitError"
    assert json.loads(cause)["errorMessage"] == f"RequestId: r-1 Error: Runtime {ending}"


def test_an_exception_whose_message_cannot_render_still_fails_its_task() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    def raises_unprintable(event: Any, context: Any) -> None:
        raise Unprintable()

    outcome = invoke(raises_unprintable, {}, LambdaContext("f"))

    assert outcome["error"] == "Unprintable"
    assert json.loads(outcome["cause"])["errorMessage"] == "<Unprintable whose message could not be rendered>"
