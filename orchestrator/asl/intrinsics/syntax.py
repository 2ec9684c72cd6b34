"""The syntax of intrinsic calls: the parsed form and the parser that builds it.

An intrinsic call is ``States.Name(argument, ...)`` where each argument is a single-quoted
string, a number, ``true``/``false``/``null``, a path (``$``, ``$.a.b``, ``$$.Execution.Id``,
``$variable``) or another call. Inside a quoted string a backslash escapes ``'``, ``{``,
``}`` and ``\\``; any other backslash is an error, as the ASL reserves it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn, Union

PLACEHOLDER = "{}"

_NAME = re.compile(r"States\.([A-Za-z0-9]+)")
_NUMBER = re.compile(r"-?\d+(?P<fraction>\.\d+)?(?P<exponent>[eE][+-]?\d+)?")
_KEYWORDS = {"true": True, "false": False, "null": None}
_KEYWORD = re.compile(r"[a-z]+")
_ESCAPABLE = "'{}\\"
# Calls nest by recursion; a bound far above any real definition keeps hostile text from
# exhausting the interpreter's stack and turns it into an ordinary syntax error.
MAX_NESTING = 100


@dataclass(frozen=True)
class Literal:
    """A constant argument written in the call.

    Attributes:
        value: the JSON value (``str``, ``int``, ``float``, ``bool`` or ``None``).
        pieces: for a string, its text cut at each unescaped ``{}``, so that ``States.Format``
            can tell a placeholder from an escaped ``\\{\\}``; empty for other values.
    """

    value: str | int | float | bool | None
    pieces: tuple[str, ...] = ()


@dataclass(frozen=True)
class PathArgument:
    """An argument read from the input, the context object or a variable when evaluated."""

    path: str


@dataclass(frozen=True)
class Call:
    """One intrinsic call: its full name (``States.Format``), its arguments, where it starts."""

    name: str
    arguments: tuple[Argument, ...]
    position: int = 0


Argument = Union[Literal, PathArgument, Call]  # noqa: UP007 (a runtime alias needs Union here)


class CallParser:
    """A recursive-descent parser over one expression; ``arity`` maps a name to (min, max)."""

    def __init__(self, expression: str, arity: Mapping[str, tuple[int, int | None]]) -> None:
        self.text = expression
        self.position = 0
        self.arity = arity
        self.depth = 0

    def parse(self) -> Call:
        """Parse the whole expression, which must be exactly one call."""
        call = self._call()
        self._skip_spaces()
        if self.position != len(self.text):
            self._fail("unexpected text after the closing parenthesis")
        return call

    def _fail(self, problem: str, position: int | None = None) -> NoReturn:
        where = self.position if position is None else position
        raise ValueError(f"{problem} at position {where} of intrinsic {self.text!r}")

    def _skip_spaces(self) -> None:
        while self.position < len(self.text) and self.text[self.position].isspace():
            self.position += 1

    def _peek(self) -> str:
        return self.text[self.position] if self.position < len(self.text) else ""

    def _call(self) -> Call:
        start = self.position
        match = _NAME.match(self.text, self.position)
        if match is None:
            self._fail("expected an intrinsic function name such as States.Format")
        name = match.group(0)
        if name not in self.arity:
            self._fail(f"unknown intrinsic function {name!r}", start)
        self.position = match.end()
        self._skip_spaces()
        if self._peek() != "(":
            self._fail(f"expected '(' after {name}")
        self.position += 1
        self.depth += 1
        if self.depth > MAX_NESTING:
            self._fail(f"calls nest more than {MAX_NESTING} deep", start)
        call = Call(name, self._arguments(name), start)
        self.depth -= 1
        self._check_arity(call)
        return call

    def _arguments(self, name: str) -> tuple[Argument, ...]:
        arguments: list[Argument] = []
        self._skip_spaces()
        if self._peek() == ")":
            self.position += 1
            return ()
        while True:
            self._skip_spaces()
            arguments.append(self._argument())
            self._skip_spaces()
            separator = self._peek()
            self.position += 1
            if separator == ")":
                return tuple(arguments)
            if separator != ",":
                self._fail(f"expected ',' or ')' in the arguments of {name}", self.position - 1)

    def _check_arity(self, call: Call) -> None:
        least, most = self.arity[call.name]
        count = len(call.arguments)
        if count < least or (most is not None and count > most):
            expected = _argument_count(least, most)
            self._fail(f"{call.name} takes {expected} argument(s) but was given {count}", call.position)

    def _argument(self) -> Argument:
        char = self._peek()
        if char == "'":
            return self._string()
        if char == "$":
            return self._path()
        if self.text.startswith("States.", self.position):
            return self._call()
        if char == "-" or char.isdigit():
            return self._number()
        if char.isalpha():
            return self._keyword()
        self._fail("expected an argument (a 'string', a number, true, false, null, a $path or a call)")

    def _string(self) -> Literal:
        start = self.position
        self.position += 1
        pieces: list[str] = []
        current: list[str] = []
        while self.position < len(self.text):
            char = self.text[self.position]
            if char == "'":
                self.position += 1
                pieces.append("".join(current))
                return Literal(PLACEHOLDER.join(pieces), tuple(pieces))
            if char == "\\":
                escaped = self.text[self.position + 1 : self.position + 2]
                if not escaped or escaped not in _ESCAPABLE:
                    sequence = "\\" + escaped
                    self._fail(
                        f"invalid escape sequence {sequence!r}; a backslash may only escape ' {{ }} \\"
                    )
                current.append(escaped)
                self.position += 2
                continue
            if self.text.startswith(PLACEHOLDER, self.position):
                pieces.append("".join(current))
                current = []
                self.position += len(PLACEHOLDER)
                continue
            current.append(char)
            self.position += 1
        self._fail("unterminated string literal", start)

    def _number(self) -> Literal:
        match = _NUMBER.match(self.text, self.position)
        if match is None:
            self._fail("malformed number")
        self.position = match.end()
        text = match.group(0)
        if match.group("fraction") or match.group("exponent"):
            return Literal(float(text))
        return Literal(int(text))

    def _keyword(self) -> Literal:
        match = _KEYWORD.match(self.text, self.position)
        word = match.group(0) if match else ""
        if word not in _KEYWORDS:
            self._fail(f"unexpected word {word!r}; literals are true, false, null, numbers and 'strings'")
        self.position += len(word)
        return Literal(_KEYWORDS[word])

    def _path(self) -> PathArgument:
        start = self.position
        depth = 0
        quote = ""
        while self.position < len(self.text):
            char = self.text[self.position]
            if quote:
                quote = "" if char == quote else quote
            elif char in "'\"" and depth > 0:
                quote = char
            elif char in "[(":
                depth += 1
            elif char in "])":
                if depth == 0:
                    break
                depth -= 1
            elif char == "," and depth == 0:
                break
            self.position += 1
        return PathArgument(self.text[start : self.position].rstrip())


def _argument_count(least: int, most: int | None) -> str:
    if most is None:
        return f"at least {least}"
    return str(least) if least == most else f"{least} to {most}"
