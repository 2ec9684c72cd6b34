"""JSONPath-mode Choice rules turned, when the machine is parsed, into tests ready to run.

A rule read afresh at every step costs a search for its operator, a lookup of its
comparison and a parse-cache lookup for each path; compiled once, it is a closure over its
compiled paths and its operand, already converted. Each test gives exactly what
``choice.matches`` gives for the same rule (it is the fallback for any rule it does not
recognise), errors included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.asl.choice import (
    COMPARISONS,
    OPERATORS,
    PATH_COMPARISONS,
    TYPE_TESTS,
    default_or_fail,
    invalid_path,
    matches,
)
from orchestrator.asl.errors import PathNotFound
from orchestrator.asl.jsonpath import JsonPath, PathSyntaxError, compile_path
from orchestrator.asl.payload import Scope, document_for, resolve_path

RuleTest = Callable[[Scope], bool]
CompiledChoices = tuple[tuple[RuleTest, Any], ...]


def compile_choices(choices: Any) -> CompiledChoices | None:
    """Each rule of a Choice state's ``Choices`` with its ``Next``; None when they are not a list."""
    if not isinstance(choices, list):
        return None
    return tuple(
        (compile_rule(rule), rule.get("Next") if isinstance(rule, dict) else None) for rule in choices
    )


def choose(choices: CompiledChoices, state: dict[str, Any], scope: Scope) -> str:
    """``choice.choose``, with the rules compiled."""
    for test, next_state in choices:
        if test(scope):
            return next_state  # type: ignore[no-any-return]
    return default_or_fail(state)


def compile_rule(rule: Any) -> RuleTest:
    if not isinstance(rule, dict):
        return _general(rule)
    for combinator in ("And", "Or"):
        if combinator in rule:
            inner = rule[combinator]
            if not isinstance(inner, list):
                return _general(rule)
            tests = tuple(compile_rule(each) for each in inner)
            if combinator == "And":
                return lambda scope: all(test(scope) for test in tests)
            return lambda scope: any(test(scope) for test in tests)
    if "Not" in rule:
        negated = compile_rule(rule["Not"])
        return lambda scope: not negated(scope)
    return _compile_comparison(rule)


def _compile_comparison(rule: dict[str, Any]) -> RuleTest:
    name = next((key for key in rule if key in OPERATORS), None)
    variable = rule.get("Variable")
    path = _compiled(variable)
    if name is None or path is None:
        return _general(rule)
    operand = rule[name]
    if name == "IsPresent":
        wanted = operand
        return lambda scope: isinstance(wanted, bool) and _present(path, scope) is wanted
    if name in TYPE_TESTS:
        type_test = TYPE_TESTS[name]

        def test_type(scope: Scope) -> bool:
            value = _value(path, variable, scope)  # a path that selects nothing fails first
            return isinstance(operand, bool) and type_test(value) is operand

        return test_type
    if name in PATH_COMPARISONS:
        operand_path = _compiled(operand)
        if operand_path is None:
            return _general(rule)
        by_path = PATH_COMPARISONS[name]

        def compare_with_path(scope: Scope) -> bool:
            left = by_path.key(_value(path, variable, scope))
            right = by_path.key(_value(operand_path, operand, scope))
            return left is not None and right is not None and by_path.test(left, right)

        return compare_with_path
    comparison = COMPARISONS[name]
    right = comparison.key(operand)
    key, test = comparison.key, comparison.test

    def compare(scope: Scope) -> bool:
        left = key(_value(path, variable, scope))
        return left is not None and right is not None and test(left, right)

    return compare


def _compiled(path: Any) -> JsonPath | None:
    """The path compiled, or None when it is not one (the general rule reports why, if it runs)."""
    if not isinstance(path, str):
        return None
    try:
        return compile_path(path)
    except PathSyntaxError:
        return None


def _value(path: JsonPath, text: str, scope: Scope) -> Any:
    try:
        return path.query(document_for(path, scope))
    except PathNotFound as missing:
        raise invalid_path(text) from missing


def _present(path: JsonPath, scope: Scope) -> bool:
    try:
        path.query(document_for(path, scope))
    except PathNotFound:
        return False
    return True


def _general(rule: Any) -> RuleTest:
    return lambda scope: matches(rule, lambda path: resolve_path(path, scope))
