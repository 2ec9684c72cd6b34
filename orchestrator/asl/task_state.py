"""The Task state: which resource runs, what it is sent, and what its report does."""

from __future__ import annotations

import json
import uuid
from email.utils import formatdate
from typing import Any

from orchestrator.asl import errors
from orchestrator.asl.dataflow import StateData
from orchestrator.asl.errors import StatesError
from orchestrator.asl.execution import Event, Run, RunActivity, RunService, RunTask, Thread, arrival
from orchestrator.asl.json_values import (
    BOUND_LIMIT,
    NO_BOUND,
    PAYLOAD_LIMIT_BYTES,
    exceeds_payload_limit,
    payload_bound,
)
from orchestrator.asl.resources import Resource, function_of, parse_resource
from orchestrator.asl.sdk_responses import with_metadata

__all__ = [
    "PAYLOAD_LIMIT_BYTES",
    "ReportedError",
    "data_limit_cause",
    "data_limit_error",
    "enter",
    "exceeds_payload_limit",
    "parse_resource",
    "resume",
]


ACTIVITY_STARTED = "ActivityStarted"
"""The event GetActivityTask reports when it hands an activity's task to a worker (``workerName``)."""
CALLBACK_KIND = "task"
"""The kind of the token a callback task (an activity's too) is answered on."""


class ReportedError(StatesError):
    """An error the task reported (or a limit its result broke), as opposed to one the state raised.

    AWS words these causes without naming the state that was running.
    """


def enter(run: Run, thread: Thread, data: StateData) -> None:
    """Schedule the task: compute its input, emit the action, arm its timers."""
    state = data.state
    compiled = data.compiled
    resource = compiled.resource or parse_resource(state["Resource"])
    if resource.callback:
        data.context["Task"] = {"Token": _callback_token(run, thread)}
    if compiled.input_as_is:
        effective = data.raw_input
    else:
        effective = data.effective_input()
        if effective is not data.raw_input and exceeds_payload_limit(effective):
            # Its raw input was under the limit: only Parameters (or Arguments) made it more.
            raise data_limit_error(compiled.name)
    timeout = heartbeat = None
    if compiled.has_timers:
        timeout = _seconds(state, data, "TimeoutSeconds")
        heartbeat = _seconds(state, data, "HeartbeatSeconds")
    if resource.kind in ("lambda", "activity"):
        scheduled: dict[str, Any] = {"input": effective, "resource": resource.arn}
    else:
        scheduled = {"parameters": effective, "region": "us-east-1", **resource.event_details}
    if timeout is not None:
        scheduled["timeoutInSeconds"] = int(timeout)
    if heartbeat is not None:
        scheduled["heartbeatInSeconds"] = int(heartbeat)
    run.record_event(thread, resource.scheduled_event, scheduled)
    if resource.kind != "activity":
        # An activity's task starts only when a worker takes it: see _activity_started.
        run.record_event(thread, resource.started_event, resource.event_details)
    if (
        run.in_process is not None
        and timeout is None
        and heartbeat is None
        and not resource.callback
        and resource.kind != "service"
        and not run.ready
        and not run.actions
    ):
        report = run.in_process.run_task_now(_function_task(resource, None, effective, thread))
        if report is not None:
            # The token it would have waited with is counted all the same, so that later
            # tokens and thread ids are what a step-by-step run gives them.
            run.next_seq()
            _take_report(run, thread, data, resource, report)
            return
    token = run.new_token(thread, "dispatch" if resource.callback else "task")
    action = _action(resource, token, effective, thread)
    if heartbeat is not None and action["type"] == "RunTask":
        # The worker running it reports a heartbeat this often, so a frozen worker shows.
        action["heartbeat_seconds"] = heartbeat
    if timeout is not None and action["type"] == "RunTask":
        # Its worker stops a function still running well past this (protocol.jobs): its task has
        # failed as States.Timeout by then, and a worker is not held for a result nobody takes.
        action["timeout_seconds"] = timeout
    run.actions.append(action)
    if timeout is not None:
        thread["timeoutAt"] = due = run.now + timeout
        run.set_timer(thread, "timeout", due)
    else:
        thread.pop("timeoutAt", None)
    if heartbeat is not None:
        thread["heartbeat"] = heartbeat
        # A function a worker runs is timed from its worker's first heartbeat, sent as the
        # task starts: a task waiting in the queue behind others is not late. A callback's
        # heartbeats come from whoever holds its token, so its clock starts now; an
        # activity's token is handed out when a worker takes the task (its clock starts then).
        if resource.kind != "activity" and (resource.callback or action["type"] != "RunTask"):
            _arm_heartbeat(run, thread, run.now)


def _callback_token(run: Run, thread: Thread) -> str:
    return run.new_token(thread, "task")


def _action(
    resource: Resource, token: str | None, effective: Any, thread: Thread
) -> RunTask | RunService | RunActivity:
    if resource.kind == "service":
        service: RunService = {
            "type": "RunService",
            "token": token,
            "service": resource.target,
            "parameters": effective,
        }
        if resource.sync:
            service["sync"] = resource.sync
        if resource.sdk:
            service["sdk"] = True
        return service
    if resource.kind == "activity":
        return {"type": "RunActivity", "token": token, "activity": resource.target, "input": effective}
    return _function_task(resource, token, effective, thread)


def _function_task(resource: Resource, token: str | None, effective: Any, thread: Thread) -> RunTask:
    attempt = thread.get("retryCount", 0) + 1
    if resource.kind == "lambda":
        name, arn, payload = resource.target, resource.arn, effective
    else:
        parameters = effective if isinstance(effective, dict) else {}
        name, arn = function_of(parameters.get("FunctionName", ""))
        payload = _invoke_payload(parameters.get("Payload"))
    return {
        "type": "RunTask",
        "token": token,
        "function": name,
        "function_arn": arn,
        "payload": payload,
        "attempt": attempt,
    }


def _invoke_payload(payload: Any) -> Any:
    # lambda:invoke sends a string Payload as the raw request body, so JSON text arrives decoded.
    if isinstance(payload, str):
        try:
            return json.loads(payload)
        except ValueError:
            return payload
    return payload


def _seconds(state: dict[str, Any], data: StateData, field: str) -> float | None:
    if field in state:
        value = state[field]
        if data.jsonata and isinstance(value, str):
            value = data.evaluate_jsonata(value, field)
        return float(value)
    path_field = f"{field}Path"
    if path_field in state:
        value = data.resolve(data.raw_input)(state[path_field])
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise StatesError(
                errors.RUNTIME, f"The {path_field} parameter does not reference a valid integer value."
            )
        return float(value)
    return None


def data_limit_cause(source: str) -> str:
    """AWS's cause for data over the payload limit; ``source`` is the state's name, or the task's resource."""
    return (
        f"The state/task '{source}' returned a result with a size exceeding the maximum number of bytes "
        "service limit."
    )


def data_limit_error(source: str, *, matched_by_all: bool = False) -> ReportedError:
    """States.DataLimitExceeded for data of ``source`` over 262,144 bytes.

    "Step Functions service quotas" (Developer Guide, limits-overview.html): "Maximum input or
    output size for a task, state, or execution: 256 KiB of data as a UTF-8 encoded string".
    "Handling errors in Step Functions workflows" (concepts-error-handling.html) reports
    States.DataLimitExceeded when "The output of a connector is larger than payload size
    quota", "The output of a state is larger than payload size quota" or "After Parameters
    processing, the input of a state is larger than the payload size quota". AWS words every
    one of them as it words a result (recorded for a task's result and a Pass state's Result),
    without the "An error occurred while executing the state" prefix: a ``ReportedError``.
    """
    return ReportedError(errors.DATA_LIMIT_EXCEEDED, data_limit_cause(source), matched_by_all=matched_by_all)


def resume(run: Run, thread: Thread, data: StateData, kind: str, event: Event) -> None:
    """A report for the task ``thread`` waits on: its result, its error, a heartbeat or a timeout."""
    resource = data.compiled.resource or parse_resource(data.state["Resource"])
    event_type = event.get("type")
    if event_type == ACTIVITY_STARTED:
        if resource.kind == "activity" and kind == CALLBACK_KIND:
            _activity_started(run, thread, event)
        return
    if kind in ("heartbeat", "timeout"):
        _time_out(run, thread, resource, errors.HEARTBEAT_TIMEOUT if kind == "heartbeat" else errors.TIMEOUT)
    if kind == "dispatch" and event_type not in ("TaskFailed", "TaskHeartbeat"):
        return  # the function ran; a callback task waits for SendTaskSuccess instead
    arrived = arrival(event, run.now)
    missed = _missed_deadline(thread, arrived)
    if missed is not None:
        _time_out(run, thread, resource, missed)
    if event_type == "TaskSubmitted":
        if resource.sync:  # a .sync task's nested execution started: the task waits on for its end
            details = resource.event_details
            run.record_event(thread, "TaskSubmitted", {"output": event.get("output"), **details})
        return
    if event_type == "TaskHeartbeat":
        run.drop_timers(thread, "heartbeat")
        if thread.get("heartbeat"):
            _arm_heartbeat(run, thread, arrived)
        return
    _end_deadlines(thread)
    run.drop_tokens(thread)
    _take_report(run, thread, data, resource, event)


def _missed_deadline(thread: Thread, arrived: float) -> str | None:
    """The error of the deadline the task had met when a report ``arrived``; the first, if both.

    "If the task runs longer than the specified seconds, this state fails with a States.Timeout
    error name", and a task that sends no heartbeat for HeartbeatSeconds fails with
    States.HeartbeatTimeout (state-task.html). A report that arrives past either is too late,
    as on AWS, though it was taken before the deadline's timer fired (the orchestrators were
    away or busy when it came due); the timer, firing after, finds its token gone. A report
    that arrived in time and was taken late is on time.
    """
    deadlines = [
        (thread.get("heartbeatAt"), errors.HEARTBEAT_TIMEOUT),
        (thread.get("timeoutAt"), errors.TIMEOUT),
    ]
    passed = [(due, error) for due, error in deadlines if due is not None and arrived > due]
    return min(passed)[1] if passed else None


def _time_out(run: Run, thread: Thread, resource: Resource, error: str) -> None:
    """End the task as timed out: its event, then the error its Retry and Catch see.

    Raises:
        ReportedError: always, with ``error``.
    """
    _end_deadlines(thread)
    run.drop_tokens(thread)
    if error == errors.TIMEOUT:
        run.record(thread, f"{resource.event_prefix}TimedOut", error=error, **resource.event_details)
    else:
        run.record(thread, "ActivityTimedOut" if resource.kind == "activity" else "TaskTimedOut", error=error)
    raise ReportedError(error, None)


def _arm_heartbeat(run: Run, thread: Thread, since: float) -> None:
    """The task must send a heartbeat within its HeartbeatSeconds of ``since``."""
    thread["heartbeatAt"] = due = since + thread["heartbeat"]
    run.set_timer(thread, "heartbeat", due)


def _end_deadlines(thread: Thread) -> None:
    thread.pop("timeoutAt", None)
    thread.pop("heartbeatAt", None)


def _activity_started(run: Run, thread: Thread, event: Event) -> None:
    """A worker's GetActivityTask took the task: ActivityStarted, and its heartbeat clock starts.

    Heartbeats can only come from a worker that holds the token, which a worker gets here,
    so HeartbeatSeconds counts from now; a task no worker takes is ended by TimeoutSeconds.
    """
    worker = event.get("workerName")
    run.record_event(thread, ACTIVITY_STARTED, {"workerName": worker} if isinstance(worker, str) else {})
    if thread.get("heartbeat"):
        run.drop_timers(thread, "heartbeat")
        _arm_heartbeat(run, thread, arrival(event, run.now))


def _take_report(run: Run, thread: Thread, data: StateData, resource: Resource, event: Event) -> None:
    """The task's result or error: its event, then the state's output and what comes next."""
    if event.get("type") == "TaskFailed":
        error, cause = event.get("error") or "Error", event.get("cause")
        failed: dict[str, Any] = {"error": error}
        if cause is not None:
            failed["cause"] = cause
        run.record(thread, f"{resource.event_prefix}Failed", **failed, **resource.event_details)
        raise ReportedError(error, cause)
    result = event.get("output")
    result_bound = payload_bound(result)
    if result_bound > BOUND_LIMIT and exceeds_payload_limit(result):
        source = f"lambda:{resource.target}" if resource.kind == "lambda" else resource.resource_type
        # A Catch or Retry on States.ALL handles this one, as AWS's recorded executions show.
        failure = data_limit_error(source, matched_by_all=True)
        run.record(thread, f"{resource.event_prefix}Failed", error=failure.error, cause=failure.cause)
        raise failure
    if resource.kind == "invoke" and not resource.callback:
        # A request id the same however the execution is driven: from the execution and the
        # event that started the task, not from a random source the core does not have.
        started = f"{data.context['Execution']['Id']}#{thread.get('lastEventId', 0)}"
        result = invoke_envelope(result, run.now, str(uuid.uuid5(uuid.NAMESPACE_URL, started)))
        result_bound = NO_BOUND  # the envelope's is not worked out: its output is measured
    details = resource.event_details
    run.record_event(
        thread, resource.succeeded_event, {"output": result, **details} if details else {"output": result}
    )
    output = data.output(result)
    compiled = data.compiled
    raw_input = data.raw_input
    if output is not raw_input and (output is not result or result_bound > BOUND_LIMIT):
        # An output that ResultPath alone made from the input and the result is bounded by
        # their bounds added up (``CompiledState.merge_room``); the input's is usually known,
        # from the output of the state before. Any other output is measured.
        room = compiled.merge_room
        known = run.known_bound
        if known[0] is not raw_input and room < NO_BOUND:
            known = (raw_input, payload_bound(raw_input))
        bound = known[1] + result_bound + room
        if bound <= BOUND_LIMIT:
            run.known_bound = (output, bound)
        elif exceeds_payload_limit(output):
            # The result fits, but ResultSelector, ResultPath or Output made the output more.
            raise data_limit_error(compiled.name)
    if compiled.assign is not None:
        run.assign(thread, data.assignments(compiled.assign, result=result))
    run.record_state(thread, "TaskStateExited", compiled.name, "output", output)
    run.advance_or_finish(thread, compiled, output)


def invoke_envelope(payload: Any, now: float, request_id: str) -> dict[str, Any]:
    """The result lambda:invoke gives a state: the function's output wrapped as the Invoke API returns it.

    The shape of "Invoke Lambda with Step Functions" (AWS Step Functions Developer Guide):
    ExecutedVersion, Payload (the function's output, parsed from JSON), SdkHttpMetadata
    (the response's headers, each also as a one-element list under AllHttpHeaders, and
    HttpStatusCode), SdkResponseMetadata.RequestId and StatusCode.
    """
    body = json.dumps(payload, separators=(",", ":"))
    headers = {
        "Connection": "keep-alive",
        "Content-Length": str(len(body.encode())),
        "Content-Type": "application/json",
        "Date": formatdate(now, usegmt=True),
        "X-Amz-Executed-Version": "$LATEST",
        "x-amzn-Remapped-Content-Length": "0",
        "x-amzn-RequestId": request_id,
        "X-Amzn-Trace-Id": f"root=1-{int(now):08x}-{request_id.replace('-', '')[:24]};sampled=0",
    }
    answer = {"ExecutedVersion": "$LATEST", "Payload": payload}
    return {**with_metadata(answer, headers, request_id), "StatusCode": 200}
