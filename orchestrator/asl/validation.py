"""Static checks of a definition, each finding reported with its JSON path.

Run before any execution starts, so an invalid definition never reaches the orchestrator.
"""

from __future__ import annotations

from typing import Any

from orchestrator.asl.errors import Problem
from orchestrator.asl.state_checks import check_state

STATE_TYPES = frozenset({"Task", "Pass", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map"})
TERMINAL_TYPES = frozenset({"Choice", "Succeed", "Fail"})
QUERY_LANGUAGES = frozenset({"JSONPath", "JSONata"})


# Checking and running a definition recurse through its JSON; real definitions nest a few
# dozen levels, and a bound far below the interpreter's stack keeps hostile ones from
# crashing the validator, or the engine later on.
MAX_NESTING = 256


def validate(definition: Any) -> list[Problem]:
    """Every problem found in ``definition``; an empty list means it is valid."""
    if not isinstance(definition, dict):
        return [Problem("/", "a state machine definition must be a JSON object")]
    too_deep = _first_too_deep(definition, MAX_NESTING)
    if too_deep is not None:
        return [Problem(too_deep, f"the definition nests deeper than {MAX_NESTING} levels here")]
    try:
        return _validate(definition)
    except RecursionError:
        return [Problem("/", "the definition nests too deeply to be checked")]


def _first_too_deep(value: Any, limit: int) -> str | None:
    """The JSON path of the first node nested deeper than ``limit``, or None; no recursion."""
    pending: list[tuple[Any, int, str]] = [(value, 0, "")]
    while pending:
        node, depth, where = pending.pop()
        if depth > limit:
            return where or "/"
        if isinstance(node, dict):
            pending.extend((child, depth + 1, f"{where}/{key}") for key, child in node.items())
        elif isinstance(node, list):
            pending.extend((child, depth + 1, f"{where}/{index}") for index, child in enumerate(node))
    return None


def _validate(definition: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    language = definition.get("QueryLanguage", "JSONPath")
    _check_query_language(language, "", problems)
    _check_body(definition, "", problems, language)
    return problems


def _check_query_language(language: Any, where: str, problems: list[Problem]) -> None:
    # Not a string (a list, an object) is refused too, never looked up in the set of names.
    if not isinstance(language, str) or language not in QUERY_LANGUAGES:
        problems.append(Problem(f"{where}/QueryLanguage", f"must be JSONPath or JSONata, not {language!r}"))


def _check_body(body: Any, where: str, problems: list[Problem], language: str) -> None:
    if not isinstance(body, dict):
        problems.append(Problem(where or "/", "must be an object with StartAt and States"))
        return
    states = body.get("States")
    if not isinstance(states, dict) or not states:
        problems.append(Problem(f"{where}/States", "must be a non-empty object of states"))
        return
    start_at = body.get("StartAt")
    if not isinstance(start_at, str):
        problems.append(Problem(f"{where}/StartAt", "is required and must name a state"))
    elif start_at not in states:
        problems.append(Problem(f"{where}/StartAt", f"names no state: {start_at!r}"))
    language = body.get("QueryLanguage", language)
    for name, state in states.items():
        _check_state(name, state, states, f"{where}/States/{name}", problems, language)
    _check_reachable(body, where, problems)


def _check_state(
    name: str, state: Any, states: dict[str, Any], where: str, problems: list[Problem], language: str
) -> None:
    if not isinstance(state, dict):
        problems.append(Problem(where, "a state must be an object"))
        return
    if len(name) > 80:
        problems.append(Problem(where, "a state name must be at most 80 characters"))
    state_type = state.get("Type")
    if not isinstance(state_type, str) or state_type not in STATE_TYPES:
        problems.append(Problem(f"{where}/Type", f"unknown state type {state_type!r}"))
        return
    if "QueryLanguage" in state:
        _check_query_language(state["QueryLanguage"], where, problems)
    language = state.get("QueryLanguage", language)
    problems.extend(check_state(state, language, where))
    for field in ("Next", "Default"):
        target = state.get(field)
        if target is not None and not _names_state(target, states):
            problems.append(Problem(f"{where}/{field}", f"names no state: {target!r}"))
    if state_type not in TERMINAL_TYPES:
        has_next, has_end = "Next" in state, state.get("End") is True
        if has_next == has_end:
            problems.append(Problem(where, 'must have exactly one of Next or "End": true'))
    if state_type == "Task" and not isinstance(state.get("Resource"), str):
        problems.append(Problem(f"{where}/Resource", "a Task needs a Resource string"))
    if state_type == "Choice":
        choices = state.get("Choices")
        if not isinstance(choices, list) or not choices:
            problems.append(Problem(f"{where}/Choices", "must be a non-empty array of rules"))
        else:
            for index, rule in enumerate(choices):
                target = rule.get("Next") if isinstance(rule, dict) else None
                if not _names_state(target, states):
                    problems.append(Problem(f"{where}/Choices/{index}/Next", f"names no state: {target!r}"))
    for index, catcher in enumerate(_listed(state, "Catch")):
        target = catcher.get("Next") if isinstance(catcher, dict) else None
        if not _names_state(target, states):
            problems.append(Problem(f"{where}/Catch/{index}/Next", f"names no state: {target!r}"))
    if state_type == "Parallel":
        branches = state.get("Branches")
        if not isinstance(branches, list) or not branches:
            problems.append(Problem(f"{where}/Branches", "must be a non-empty array of state machines"))
        else:
            for index, branch in enumerate(branches):
                _check_body(branch, f"{where}/Branches/{index}", problems, language)
    if state_type == "Map":
        field = "ItemProcessor" if "ItemProcessor" in state else "Iterator"
        processor = state.get(field)
        _check_body(processor, f"{where}/{field}", problems, language)
        if isinstance(processor, dict) and not isinstance(processor.get("ProcessorConfig", {}), dict):
            problems.append(Problem(f"{where}/{field}/ProcessorConfig", "must be an object"))


def _listed(state: dict[str, Any], field: str) -> list[Any]:
    # The field's own check reports a non-list; here it only must not break the walk.
    value = state.get(field)
    return value if isinstance(value, list) else []


def _names_state(target: Any, states: dict[str, Any]) -> bool:
    # A list or an object where a name belongs is unhashable; it names no state either way.
    return isinstance(target, str) and target in states


def _successors(state: dict[str, Any]) -> list[str]:
    targets = [state.get("Next"), state.get("Default")]
    targets += [rule.get("Next") for rule in _listed(state, "Choices") if isinstance(rule, dict)]
    targets += [catcher.get("Next") for catcher in _listed(state, "Catch") if isinstance(catcher, dict)]
    return [target for target in targets if isinstance(target, str)]


def _check_reachable(body: dict[str, Any], where: str, problems: list[Problem]) -> None:
    states = body["States"]
    seen: set[str] = set()
    pending = [body.get("StartAt")]
    while pending:
        name = pending.pop()
        if not isinstance(name, str) or name in seen or name not in states:
            continue
        seen.add(name)
        if isinstance(states[name], dict):
            pending.extend(_successors(states[name]))
    for name in states:
        if name not in seen:
            problems.append(Problem(f"{where}/States/{name}", "is unreachable from StartAt"))
