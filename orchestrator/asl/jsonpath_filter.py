"""Filter expressions of JSONPath (``[?(@.price < 10 && @.kind == 'book')]``), compiled once.

A filter compiles into a predicate ``(current, root) -> bool``: comparisons, existence tests,
``!``, ``&&``, ``||`` and parentheses, with operands that are constants or paths relative to
the current node (``@``) or to the document (``$``).
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.asl.errors import PathNotFound
from orchestrator.asl.json_values import NUMBER_TYPES as _NUMBER_TYPES
from orchestrator.asl.jsonpath import MAX_FILTER_NESTING, PathSyntaxError, abridged, compile_path

_MISSING = object()
_FILTER_TOKEN = re.compile(
    r"""(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    |(?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    |(?P<op>==|!=|<=|>=|&&|\|\||[<>!()])
    |(?P<word>true|false|null)\b
    |(?P<path>[@$])""",
    re.VERBOSE,
)
_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_COMPARISONS = frozenset(("==", "!=", *_ORDERINGS))
_OPERAND_STOP = "=!<>&|() \t\n"

Predicate = Callable[[Any, Any], bool]


@dataclass(frozen=True, slots=True)
class _Operand:
    """One side of a comparison: ``evaluate(current, root)`` gives a value or ``_MISSING``."""

    evaluate: Callable[[Any, Any], Any]
    indefinite: bool = False


def compile_filter(text: str, path: str) -> Predicate:
    tokens = _tokenize_filter(text, path)
    return _FilterParser(tokens, text, path).parse()


def _tokenize_filter(text: str, path: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return tokens
        match = _FILTER_TOKEN.match(text, position)
        if match is None:
            raise PathSyntaxError(f"unsupported filter expression '{text}' in '{path}'")
        kind, token = match.lastgroup, match.group()
        if kind == "path":
            end = _operand_path_end(text, position + 1)
            tokens.append(("operand", _path_operand(text[position:end])))
            position = end
            continue
        if kind == "op":
            tokens.append(("op", token))
        elif kind == "string":
            literal = re.sub(r"\\\\(.)", r"\\1", token[1:-1])
            tokens.append(("operand", _Operand(_constant(literal))))
        else:
            tokens.append(("operand", _Operand(_constant(json.loads(token)))))
        position = match.end()


def _operand_path_end(text: str, position: int) -> int:
    while position < len(text):
        char = text[position]
        if char == "[":
            quote = ""
            while position < len(text) and (quote or text[position] != "]"):
                if text[position] in "'\"" and not quote:
                    quote = text[position]
                elif text[position] == quote:
                    quote = ""
                position += 1
        elif text.startswith("()", position):
            position += 1
        elif char in _OPERAND_STOP:
            return position
        position += 1
    return position


def _path_operand(text: str) -> _Operand:
    compiled = compile_path(text)
    relative = compiled.root == "@"

    def evaluate(current: Any, root: Any) -> Any:
        try:
            return compiled.query(current if relative else root)
        except PathNotFound:
            return _MISSING

    return _Operand(evaluate, indefinite=not compiled.definite)


def _constant(value: Any) -> Callable[[Any, Any], Any]:
    return lambda current, root: value


class _FilterParser:
    """Recursive descent over ``||``, ``&&``, ``!``, parentheses and comparisons."""

    def __init__(self, tokens: list[tuple[str, Any]], text: str, path: str) -> None:
        self.tokens = tokens
        self.position = 0
        self.depth = 0
        self.where = f"the filter '{abridged(text)}' of '{abridged(path)}'"

    def _enter(self) -> None:
        """Count one more level of ``!`` or parentheses; too many is a syntax error, not a stack overflow."""
        self.depth += 1
        if self.depth > MAX_FILTER_NESTING:
            limit = MAX_FILTER_NESTING
            raise PathSyntaxError(f"{self.where} nests '!' and parentheses more than {limit} deep")

    def parse(self) -> Predicate:
        predicate = self._any()
        if self.position != len(self.tokens):
            raise PathSyntaxError(f"unexpected '{self.tokens[self.position][1]}' in {self.where}")
        return predicate

    def _peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _take_op(self, *ops: str) -> str | None:
        token = self._peek()
        if token is not None and token[0] == "op" and token[1] in ops:
            self.position += 1
            return token[1]
        return None

    def _any(self) -> Predicate:
        # A chain of operands becomes one flat predicate, so a long chain costs no stack depth.
        predicates = [self._all()]
        while self._take_op("||"):
            predicates.append(self._all())
        return predicates[0] if len(predicates) == 1 else _either(tuple(predicates))

    def _all(self) -> Predicate:
        predicates = [self._unary()]
        while self._take_op("&&"):
            predicates.append(self._unary())
        return predicates[0] if len(predicates) == 1 else _both(tuple(predicates))

    def _unary(self) -> Predicate:
        if self._take_op("!"):
            self._enter()
            predicate = _negation(self._unary())
            self.depth -= 1
            return predicate
        if self._take_op("("):
            self._enter()
            predicate = self._any()
            if not self._take_op(")"):
                raise PathSyntaxError(f"missing ')' in {self.where}")
            self.depth -= 1
            return predicate
        left = self._operand()
        comparison = self._take_op(*_COMPARISONS)
        if comparison is None:
            return _existence(left)
        return _comparison(comparison, left, self._operand())

    def _operand(self) -> _Operand:
        token = self._peek()
        if token is None or token[0] != "operand":
            raise PathSyntaxError(f"expected a value or a path in {self.where}")
        self.position += 1
        return token[1]


def _either(predicates: tuple[Predicate, ...]) -> Predicate:
    return lambda current, root: any(predicate(current, root) for predicate in predicates)


def _both(predicates: tuple[Predicate, ...]) -> Predicate:
    return lambda current, root: all(predicate(current, root) for predicate in predicates)


def _negation(inner: Predicate) -> Predicate:
    return lambda current, root: not inner(current, root)


def _existence(operand: _Operand) -> Predicate:
    def exists(current: Any, root: Any) -> bool:
        value = operand.evaluate(current, root)
        if operand.indefinite:
            return bool(value)
        return value is not _MISSING and value is not False

    return exists


def _comparison(op: str, left: _Operand, right: _Operand) -> Predicate:
    def compare(current: Any, root: Any) -> bool:
        return _compare(op, left.evaluate(current, root), right.evaluate(current, root))

    return compare


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is _MISSING or right is _MISSING:
        # A missing member equals nothing, so it differs from everything.
        return op == "!="
    if op == "==":
        return _same_json(left, right)
    if op == "!=":
        return not _same_json(left, right)
    if (_is_number(left) and _is_number(right)) or (isinstance(left, str) and isinstance(right, str)):
        return _ORDERINGS[op](left, right)
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, _NUMBER_TYPES) and not isinstance(value, bool)


def _same_json(left: Any, right: Any) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    return left == right


# ---------------------------------------------------------------------------- public API
