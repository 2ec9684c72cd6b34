"""Entering a state, by type, and resuming a thread that waited; Pass, Choice, Wait, Succeed, Fail."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from orchestrator.asl import choice, choice_rules, errors, fork_states, intrinsics, payload, task_state
from orchestrator.asl.dataflow import StateData
from orchestrator.asl.errors import PathNotFound, StatesError
from orchestrator.asl.execution import Event, Run, Thread
from orchestrator.asl.json_values import exceeds_payload_limit


def enter(run: Run, thread: Thread) -> None:
    """Record that ``thread`` entered its state, then run the state."""
    thread["enteredAt"] = run.now
    raw_input = thread["input"]
    compiled = run.machine.scopes[thread["scope"]].compiled[thread["state"]]
    entered = run.record_state(thread, compiled.entered_event, compiled.name, "input", raw_input)
    thread["enteredEventId"] = entered
    if compiled.passes_through:
        run.record_state(thread, "PassStateExited", compiled.name, "output", raw_input)
        run.advance_or_finish(thread, compiled, raw_input)
        return
    data = StateData(compiled, raw_input, thread["vars"], run, thread)
    # The guard of ``_run_guarded``, written out: every state entered passes through here.
    try:
        _ENTER[compiled.type](run, thread, data)
    except (StatesError, PathNotFound) as failure:
        _fail_guarded(run, thread, data, failure)


def restart(run: Run, thread: Thread) -> None:
    """Run the thread's state again, after a retry's back-off, without entering it anew."""
    data = run.data(thread)
    _run_guarded(run, thread, data, _ENTER[data.compiled.type])


def resume(run: Run, thread: Thread, kind: str, event: Event) -> None:
    """Route an event to the waiting thread: a task report, a timer, a heartbeat."""
    data = run.data(thread)
    if kind == "retry":
        run.drop_tokens(thread)
        restart(run, thread)
    elif kind == "wait":
        run.drop_tokens(thread)
        _run_guarded(run, thread, data, _leave_wait)
    else:
        _run_guarded(run, thread, data, task_state.resume, kind, event)


def _run_guarded(run: Run, thread: Thread, data: StateData, body: Callable[..., None], *args: Any) -> None:
    """Run ``body(run, thread, data, *args)``, turning the errors it raises into the state's failure."""
    try:
        body(run, thread, data, *args)
    except (StatesError, PathNotFound) as failure:
        _fail_guarded(run, thread, data, failure)


def _fail_guarded(run: Run, thread: Thread, data: StateData, failure: Exception) -> None:
    if isinstance(failure, StatesError):
        reported = isinstance(failure, task_state.ReportedError)
        wildcard = failure.matched_by_all
        run.fail_state(thread, data, failure.error, failure.cause, reported=reported, matched_by_all=wildcard)
        return
    missing = cast(PathNotFound, failure)
    # Fields that read a value through a path (ErrorPath, ItemsPath, SecondsPath, ...) fail
    # the way InputPath does when the path selects nothing.
    reason = getattr(missing, "reason", f"No results for path: {missing.path}")
    run.fail_state(thread, data, errors.RUNTIME, f"Invalid path '{missing.path}' : {reason}")


def _leave(run: Run, thread: Thread, data: StateData, result: Any) -> None:
    """Finish a state with ``result``: output processing, Assign, the Exited event, what is next."""
    compiled = data.compiled
    output = result if compiled.result_as_is else data.output(result, selector=False)
    if output is not result and output is not data.raw_input and exceeds_payload_limit(output):
        # The input and the result were each under the limit; ResultPath or Output made more.
        raise task_state.data_limit_error(compiled.name)
    if compiled.assign is not None:
        run.assign(thread, data.assignments(compiled.assign, result=result))
    run.record_state(thread, compiled.exited_event, compiled.name, "output", output)
    run.advance_or_finish(thread, compiled, output)


def _leave_wait(run: Run, thread: Thread, data: StateData) -> None:
    _leave(run, thread, data, data.raw_input)


def _enter_pass(run: Run, thread: Thread, data: StateData) -> None:
    state = data.state
    if data.jsonata or (data.compiled.input_as_is and "Result" not in state):
        _leave(run, thread, data, data.raw_input)
        return
    result = state["Result"] if "Result" in state else data.effective_input()
    if result is not data.raw_input and exceeds_payload_limit(result):
        # AWS's recorded execution of a Pass whose Result is over the limit: PassStateEntered,
        # then ExecutionFailed with this error and cause (conformance case
        # test_states_errors__TestStatesErrors__test_start_large_input).
        raise task_state.data_limit_error(thread["state"])
    _leave(run, thread, data, result)


def _enter_choice(run: Run, thread: Thread, data: StateData) -> None:
    state = data.state
    if data.jsonata:
        rules = state["Choices"]
        chosen_rule: dict[str, Any] | None = None

        def condition(expression: Any) -> Any:
            return (
                expression if isinstance(expression, bool) else data.evaluate_jsonata(expression, "Condition")
            )

        next_state = choice.choose_by_condition(state, condition)
        for rule in rules:
            if rule.get("Next") == next_state:
                chosen_rule = rule
                break
        source = chosen_rule if chosen_rule is not None and next_state != state.get("Default") else state
        output = data.raw_input
        if "Output" in source:
            output = data.evaluate_jsonata(source["Output"], "Output")
        run.assign(thread, data.assignments(source.get("Assign")))
    else:
        compiled = data.compiled
        selected = data.raw_input if compiled.input_path == "$" else data.selected_input()
        choices = compiled.choices
        if choices is None:
            next_state = choice.choose(state, data.resolve(selected))
        else:
            next_state = choice_rules.choose(choices, state, data.scope(selected))
        output_path = data.compiled.output_path
        if output_path != "$":
            output = payload.select_output(output_path, selected, data.scope(selected))
        else:
            output = selected
        if data.compiled.assign is not None:
            run.assign(thread, data.assignments(data.compiled.assign))
    if output is not data.raw_input and exceeds_payload_limit(output):
        # A Choice passes on (part of) its input, but a JSONata Output can make more of it.
        raise task_state.data_limit_error(thread["state"])
    run.record_state(thread, "ChoiceStateExited", thread["state"], "output", output)
    run.goto(thread, next_state, output)


def _enter_wait(run: Run, thread: Thread, data: StateData) -> None:
    due = run.now + _wait_seconds(data) if _waits_seconds(data.state) else _wait_until(data)
    if run.outlives_execution(due):
        return  # the execution times out first, at the end of its longest life
    run.set_timer(thread, "wait", due)


def _waits_seconds(state: dict[str, Any]) -> bool:
    return "Seconds" in state or "SecondsPath" in state


def _wait_seconds(data: StateData) -> float:
    state = data.state
    if data.jsonata or "Seconds" in state:
        seconds = state["Seconds"]
        if data.jsonata and isinstance(seconds, str):
            seconds = data.evaluate_jsonata(seconds, "Seconds")
    else:
        path = state["SecondsPath"]
        seconds = data.resolve(data.selected_input())(path)
        shown = f"{path} == {_render(seconds)}"
        if not isinstance(seconds, int) or isinstance(seconds, bool):
            raise StatesError(
                errors.RUNTIME, f"The SecondsPath parameter cannot be parsed as a long value: {shown}"
            )
        if seconds < 0:
            raise StatesError(
                errors.RUNTIME, f"The SecondsPath parameter references a negative value: {shown}"
            )
    return float(seconds)


def _wait_until(data: StateData) -> float:
    state = data.state
    if "Timestamp" in state:
        stamp = state["Timestamp"]
        if data.jsonata and isinstance(stamp, str) and stamp.startswith("{%"):
            stamp = data.evaluate_jsonata(stamp, "Timestamp")
    else:
        stamp = data.resolve(data.selected_input())(state["TimestampPath"])
    moment = parse_timestamp(stamp)
    if moment is not None:
        return moment
    iso = "ISO-8601 extended offset date-time format string"
    if "TimestampPath" in state:
        shown = f"{state['TimestampPath']} == {_render(stamp)}"
        raise StatesError(
            errors.RUNTIME, f"The TimestampPath parameter does not reference a valid {iso}: {shown}"
        )
    language_error = errors.QUERY_EVALUATION_ERROR if data.jsonata else errors.RUNTIME
    raise StatesError(language_error, f"The Timestamp field cannot be parsed as an {iso}: {_render(stamp)}")


def _render(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def parse_timestamp(value: Any) -> float | None:
    """An RFC 3339 timestamp (with a time zone) as epoch seconds, or None if it is not one."""
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


def _enter_succeed(run: Run, thread: Thread, data: StateData) -> None:
    state = data.state
    if data.jsonata:
        output = data.evaluate_jsonata(state["Output"], "Output") if "Output" in state else data.raw_input
    else:
        selected = data.selected_input()
        output = payload.select_output(state.get("OutputPath", "$"), selected, data.scope(selected))
    if output is not data.raw_input and exceeds_payload_limit(output):
        raise task_state.data_limit_error(thread["state"])
    run.record(thread, "SucceedStateExited", name=thread["state"], output=output)
    run.thread_succeeded(thread, output)


def _enter_fail(run: Run, thread: Thread, data: StateData) -> None:
    state = data.state
    error, cause = state.get("Error"), state.get("Cause")
    if data.jsonata:
        if isinstance(error, str):
            error = data.evaluate_jsonata(error, "Error")
        if isinstance(cause, str):
            cause = data.evaluate_jsonata(cause, "Cause")
    else:
        resolve = data.resolve(data.raw_input)
        if "ErrorPath" in state:
            error = _path_or_intrinsic("ErrorPath", state["ErrorPath"], resolve)
        if "CausePath" in state:
            cause = _path_or_intrinsic("CausePath", state["CausePath"], resolve)
    run.thread_failed(thread, error, cause)


def _path_or_intrinsic(field: str, expression: str, resolve: Any) -> str:
    """The error or cause a Fail state's ``field`` selects: the Developer Guide's "Fail workflow
    state" says the path "must select a field whose value is a string"; anything else fails
    the state with States.Runtime, in the words AWS uses for the other ``*Path`` fields."""
    if intrinsics.is_intrinsic(expression):
        value = intrinsics.evaluate(expression, resolve)
    else:
        value = resolve(expression)
    if not isinstance(value, str):
        shown = f"{expression} == {_render(value)}"
        raise StatesError(
            errors.RUNTIME, f"The {field} parameter does not reference a valid string value: {shown}"
        )
    return value


_ENTER = {
    "Pass": _enter_pass,
    "Choice": _enter_choice,
    "Wait": _enter_wait,
    "Succeed": _enter_succeed,
    "Fail": _enter_fail,
    "Task": task_state.enter,
    "Parallel": fork_states.enter_parallel,
    "Map": fork_states.enter_map,
}
