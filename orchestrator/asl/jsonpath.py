"""JSONPath as the Amazon States Language uses it, with AWS's semantics.

AWS Step Functions evaluates JSONPath the way the Jayway Java library does, so this module
follows Jayway where AWS shows it: a *definite* path (names and indexes only) selects one
value or fails with Jayway's wording (``No results for path: $['a']``, ``Missing property
in path $['a']``); an *indefinite* path (wildcard, slice, union, filter, deep scan) selects
the list of its matches, which is empty rather than an error when nothing matches.

A path is compiled once (``compile_path`` is cached) into a ``JsonPath``: the engine meets
the same few paths millions of times, and a definite path then costs one loop over its
precompiled keys. Documents are plain JSON values (dict, list, str, int, float, bool, None)
and are never modified.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.asl.errors import PathNotFound

Key = str | int

_VARIABLE_ROOT = re.compile(r"\$(\w+)")
_DOT_NAME_END = ".[("
# '!' and parentheses in a filter parse by recursion; real filters nest a few levels at most.
MAX_FILTER_NESTING = 50


class PathSyntaxError(ValueError):
    """A path that is not valid JSONPath; the message says what is wrong and where."""


class UnmatchedPath(PathNotFound):
    """A definite path that selected nothing, with AWS's reason (``No results for path: ...``)."""

    def __init__(self, path: str, document: object, reason: str) -> None:
        super().__init__(path, document)
        self.reason = reason


# ---------------------------------------------------------------------------- steps


@dataclass(frozen=True, slots=True)
class Name:
    """``.name`` or ``['name']``: the member of an object."""

    key: str

    def select(self, nodes: list[Any], root: Any) -> list[Any]:
        return [node[self.key] for node in nodes if isinstance(node, dict) and self.key in node]

    def render(self) -> str:
        return f"['{self.key}']"


@dataclass(frozen=True, slots=True)
class Index:
    """``[n]``: an array element, counted from the end when negative."""

    index: int

    def select(self, nodes: list[Any], root: Any) -> list[Any]:
        index = self.index
        return [node[index] for node in nodes if isinstance(node, list) and -len(node) <= index < len(node)]

    def render(self) -> str:
        return f"[{self.index}]"


@dataclass(frozen=True, slots=True)
class Wildcard:
    """``[*]`` or ``.*``: every element of an array, every member value of an object."""

    def select(self, nodes: list[Any], root: Any) -> list[Any]:
        found: list[Any] = []
        for node in nodes:
            if isinstance(node, dict):
                found.extend(node.values())
            elif isinstance(node, list):
                found.extend(node)
        return found

    def render(self) -> str:
        return "[*]"


@dataclass(frozen=True, slots=True)
class Slice:
    """``[start:stop:step]``: a slice of an array, with Python's (and Jayway's) bounds."""

    start: int | None
    stop: int | None
    step: int | None

    def select(self, nodes: list[Any], root: Any) -> list[Any]:
        window = slice(self.start, self.stop, self.step)
        found: list[Any] = []
        for node in nodes:
            if isinstance(node, list):
                found.extend(node[window])
        return found

    def render(self) -> str:
        parts = ["" if part is None else str(part) for part in (self.start, self.stop, self.step)]
        return f"[{':'.join(parts if self.step is not None else parts[:2])}]"


@dataclass(frozen=True, slots=True)
class IndexUnion:
    """``[0,2]``: several array elements."""

    indexes: tuple[int, ...]

    def select(self, nodes: list[Any], root: Any) -> list[Any]:
        found: list[Any] = []
        for node in nodes:
            for index in self.indexes:
                found.extend(Index(index).select([node], root))
        return found

    def render(self) -> str:
        return f"[{','.join(map(str, self.indexes))}]"


@dataclass(frozen=True, slots=True)
class NameUnion:
    """``['a','b']``: several members; as the last step it yields one object of those present."""

    keys: tuple[str, ...]
    last: bool

    def select(self, nodes: list[Any], root: Any) -> list[Any]:
        objects = [node for node in nodes if isinstance(node, dict)]
        if self.last:
            # Jayway (hence AWS) merges the members into a new object rather than listing them.
            return [{key: node[key] for key in self.keys if key in node} for node in objects]
        return [node[key] for node in objects for key in self.keys if key in node]

    def render(self) -> str:
        return "[" + ", ".join(f"'{key}'" for key in self.keys) + "]"


@dataclass(frozen=True, slots=True)
class DeepScan:
    """``..``: the node and all its descendants, in document order, for the next step to select from."""

    def select(self, nodes: list[Any], root: Any) -> list[Any]:
        found: list[Any] = []
        for node in nodes:
            _descend(node, found)
        return found

    def render(self) -> str:
        return ".."


@dataclass(frozen=True, slots=True)
class Filter:
    """``[?(expression)]``: the array elements (or the object itself) that satisfy the expression."""

    text: str
    predicate: Callable[[Any, Any], bool]

    def select(self, nodes: list[Any], root: Any) -> list[Any]:
        found: list[Any] = []
        for node in nodes:
            candidates = node if isinstance(node, list) else [node] if isinstance(node, dict) else []
            found.extend(item for item in candidates if self.predicate(item, root))
        return found

    def render(self) -> str:
        return "[?]"


Step = Name | Index | Wildcard | Slice | IndexUnion | NameUnion | DeepScan | Filter


def _descend(node: Any, found: list[Any]) -> None:
    # An explicit stack rather than recursion: a document may nest deeper than the interpreter's stack.
    pending = [node]
    while pending:
        current = pending.pop()
        found.append(current)
        if isinstance(current, dict):
            pending.extend(reversed(list(current.values())))
        elif isinstance(current, list):
            pending.extend(reversed(current))


# ---------------------------------------------------------------------------- compiled path


@dataclass(frozen=True, slots=True)
class JsonPath:
    """A compiled path.

    Attributes:
        text: the path as written.
        root: ``"$"`` (the input), ``"$$"`` (the context object), ``"@"`` (the current node
            of a filter) or ``"var"`` (a workflow variable named ``variable``).
        variable: the variable's name when ``root`` is ``"var"``.
        steps: what the path selects, step by step.
        keys: the steps as plain keys when every step is a name or an index, else None.
        definite: True when the path selects at most one value.
        length: True when the path ends in ``.length()``.
    """

    text: str
    root: str
    variable: str | None
    steps: tuple[Step, ...]
    keys: tuple[Key, ...] | None
    definite: bool
    length: bool

    def query(self, document: Any) -> Any:
        """Apply the path to ``document`` (the value its root stands for).

        Raises:
            UnmatchedPath: the path is definite and selects nothing.
        """
        keys = self.keys
        if keys is None or self.length:
            return self._query_general(document)
        node = document
        try:
            for key in keys:
                # Python lets an index pick a character of a string; JSONPath does not.
                if key.__class__ is int and node.__class__ is str:
                    raise TypeError(key)
                node = node[key]
        except (KeyError, IndexError, TypeError):
            raise self._unmatched(document) from None
        return node

    def _query_general(self, document: Any) -> Any:
        nodes = [document]
        for step in self.steps:
            nodes = step.select(nodes, document)
        if self.definite:
            if not nodes:
                raise self._unmatched(document)
            value = nodes[0]
        else:
            value = nodes
        if self.length:
            return len(value) if isinstance(value, (list, dict)) else None
        return value

    def _unmatched(self, document: Any) -> UnmatchedPath:
        return UnmatchedPath(self.text, document, _explain(self, document))

    def render(self) -> str:
        """The path the way Jayway prints it in AWS's causes: ``$['a'][0]``."""
        return "$" + "".join(step.render() for step in self.steps)


def _explain(path: JsonPath, document: Any) -> str:
    """Why a definite path found nothing, in Jayway's words (as AWS reports them)."""
    node = document
    walked = "$"
    for position, step in enumerate(path.steps):
        last = position == len(path.steps) - 1
        if isinstance(step, Name):
            if not isinstance(node, dict):
                return (
                    f"Expected to find an object with property {step.render()} in path {walked} "
                    f"but found '{_java_type(node)}'. This is not a json object according to the "
                    "JsonProvider: 'com.jayway.jsonpath.spi.json.JsonSmartJsonProvider'."
                )
            if step.key not in node:
                if last:
                    break
                return f"Missing property in path {walked}{step.render()}"
            node = node[step.key]
        elif isinstance(step, Index):
            if node is None:
                return f"The path {walked} is null"
            if not isinstance(node, list):
                return f"Filter: {step.render()} can only be applied to arrays. Current context is: {node}"
            if not -len(node) <= step.index < len(node):
                break
            node = node[step.index]
        else:
            break
        walked += step.render()
    return f"No results for path: {path.render()}"


def _java_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "java.lang.Boolean"
    if isinstance(value, int):
        return "java.lang.Integer" if -(2**31) <= value < 2**31 else "java.lang.Long"
    if isinstance(value, float):
        return "java.lang.Double"
    if isinstance(value, str):
        return "java.lang.String"
    return "net.minidev.json.JSONArray"


@functools.lru_cache(maxsize=4096)
def compile_path(path: str) -> JsonPath:
    """Parse ``path`` once; later calls with the same text return the same ``JsonPath``.

    Raises:
        PathSyntaxError: ``path`` is not a valid JSONPath.
    """
    if not isinstance(path, str):
        raise PathSyntaxError(f"a path must be a string, not {type(path).__name__}")
    root, variable, start = _parse_root(path)
    try:
        steps, length = _parse_steps(path, start)
    except RecursionError:
        # Filters inside filters parse by recursion; no real path nests anywhere near this deep.
        raise PathSyntaxError(f"the path '{abridged(path)}' nests too deeply") from None
    definite = all(isinstance(step, Name | Index) or _merging(step) for step in steps)
    simple = all(isinstance(step, Name | Index) for step in steps)
    keys = tuple(step.key if isinstance(step, Name) else step.index for step in steps) if simple else None
    return JsonPath(path, root, variable, tuple(steps), keys, definite, length)  # type: ignore[arg-type]


def abridged(path: str) -> str:
    return path if len(path) <= 80 else f"{path[:80]}..."


def _merging(step: Step) -> bool:
    return isinstance(step, NameUnion) and step.last


def _parse_root(path: str) -> tuple[str, str | None, int]:
    if path.startswith("$$"):
        return "$$", None, 2
    if path.startswith("@"):
        return "@", None, 1
    if not path.startswith("$"):
        raise PathSyntaxError(f"the path '{path}' must begin with '$'")
    variable = _VARIABLE_ROOT.match(path)
    if variable:
        return "var", variable.group(1), variable.end()
    return "$", None, 1


# ---------------------------------------------------------------------------- parsing


def _parse_steps(path: str, position: int) -> tuple[list[Step], bool]:
    steps: list[Step] = []
    end = len(path)
    while position < end:
        if path.startswith("..", position):
            steps.append(DeepScan())
            position += 2
            if position < end and path[position] == "[":
                continue
            step, position, _ = _parse_dot_member(path, position)
            steps.append(step)
        elif path[position] == ".":
            step, position, is_length = _parse_dot_member(path, position + 1)
            if is_length:
                if position != end:
                    raise PathSyntaxError(f"'.length()' must end the path '{path}'")
                return steps, True
            steps.append(step)
        elif path[position] == "[":
            step, position = _parse_bracket(path, position, steps)
            steps.append(step)
        else:
            raise PathSyntaxError(
                f"unexpected character '{path[position]}' at position {position} in '{path}'"
            )
    if steps and isinstance(steps[-1], NameUnion):
        steps[-1] = NameUnion(steps[-1].keys, last=True)
    if steps and isinstance(steps[-1], DeepScan):
        raise PathSyntaxError(f"the path '{path}' must not end with '..'")
    return steps, False


def _parse_dot_member(path: str, position: int) -> tuple[Step, int, bool]:
    """A member after '.' or '..': a name, '*', or the function 'length()'."""
    if path.startswith("*", position):
        return Wildcard(), position + 1, False
    end = position
    while end < len(path) and path[end] not in _DOT_NAME_END:
        if path[end].isspace():
            raise PathSyntaxError(f"use bracket notation ['my prop'] for a name with blanks in '{path}'")
        end += 1
    name = path[position:end]
    if not name:
        raise PathSyntaxError(f"a name is missing at position {position} in '{path}'")
    if path.startswith("(", end):
        if name != "length" or not path.startswith("()", end):
            raise PathSyntaxError(f"unsupported function '{name}' in '{path}'; only length() is supported")
        return Name(name), end + 2, True
    return Name(name), end, False


def _parse_bracket(path: str, position: int, steps: list[Step]) -> tuple[Step, int]:
    inner = position + 1
    while inner < len(path) and path[inner] == " ":
        inner += 1
    head = path[inner : inner + 1]
    if head == "*":
        return Wildcard(), _expect_close(path, inner + 1)
    if head == "?":
        return _parse_filter(path, inner + 1)
    if head in ("'", '"'):
        return _parse_quoted_names(path, inner)
    close = path.find("]", inner)
    if close < 0:
        raise PathSyntaxError(f"unclosed '[' at position {position} in '{path}'")
    return _parse_indexes(path, path[inner:close].strip()), close + 1


def _expect_close(path: str, position: int) -> int:
    while position < len(path) and path[position] == " ":
        position += 1
    if not path.startswith("]", position):
        raise PathSyntaxError(f"expected ']' at position {position} in '{path}'")
    return position + 1


def _parse_quoted_names(path: str, position: int) -> tuple[Step, int]:
    keys: list[str] = []
    while True:
        key, position = _read_quoted(path, position)
        keys.append(key)
        while position < len(path) and path[position] == " ":
            position += 1
        if path.startswith(",", position):
            position += 1
            while position < len(path) and path[position] == " ":
                position += 1
            continue
        position = _expect_close(path, position)
        return (Name(keys[0]) if len(keys) == 1 else NameUnion(tuple(keys), last=False)), position


def _read_quoted(path: str, position: int) -> tuple[str, int]:
    """A quoted name, kept as written: AWS matches ``['a\\"b']`` against the key ``a\\"b``."""
    quote = path[position : position + 1]
    if quote not in ("'", '"'):
        raise PathSyntaxError(f"expected a quoted name at position {position} in '{path}'")
    cursor = position + 1
    while cursor < len(path):
        if path[cursor] == "\\":
            cursor += 2
            continue
        if path[cursor] == quote:
            return path[position + 1 : cursor], cursor + 1
        cursor += 1
    raise PathSyntaxError(f"unclosed quote at position {position} in '{path}'")


def _parse_indexes(path: str, content: str) -> Step:
    try:
        if ":" in content:
            parts = [part.strip() for part in content.split(":")]
            if len(parts) > 3:
                raise ValueError
            bounds = [int(part) if part else None for part in parts] + [None] * (3 - len(parts))
            if bounds[2] == 0:
                raise ValueError
            return Slice(bounds[0], bounds[1], bounds[2])
        if "," in content:
            return IndexUnion(tuple(int(part) for part in content.split(",")))
        return Index(int(content))
    except ValueError:
        raise PathSyntaxError(f"'[{content}]' is not a valid index, slice or union in '{path}'") from None


def _parse_filter(path: str, position: int) -> tuple[Step, int]:
    if not path.startswith("(", position):
        raise PathSyntaxError(f"a filter must be written '[?(...)]' in '{path}'")
    close = _matching_parenthesis(path, position)
    text = path[position + 1 : close]
    # A genuine recursion of the grammar, not a layering slip: a filter's operands are paths
    # and a path may hold filters, so jsonpath_filter imports this module and is imported here
    # when a filter is first met (the one exception tests/test_asl_imports.py allows).
    from orchestrator.asl.jsonpath_filter import compile_filter

    return Filter(text, compile_filter(text, path)), _expect_close(path, close + 1)


def _matching_parenthesis(path: str, position: int) -> int:
    depth = 0
    quote = ""
    cursor = position
    while cursor < len(path):
        char = path[cursor]
        if quote:
            if char == "\\":
                cursor += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return cursor
        cursor += 1
    raise PathSyntaxError(f"unclosed '(' in the filter of '{path}'")


def query(path: str, document: Any) -> Any:
    """Select from ``document`` what ``path`` refers to, with AWS's semantics.

    A definite path returns the value it selects; an indefinite path (wildcard, slice,
    filter, union, deep scan) returns the list of its matches, empty when none match.
    The root (``$``, ``$$`` or ``$name``) only says which document the caller should pass.

    Raises:
        UnmatchedPath: a definite path selects nothing (a ``PathNotFound``).
        PathSyntaxError: ``path`` is not valid JSONPath.
    """
    return compile_path(path).query(document)


def is_definite(path: str) -> bool:
    """Whether ``path`` selects at most one value (names and indexes only)."""
    return compile_path(path).definite


def check_path(path: str) -> str | None:
    """None when ``path`` is a valid JSONPath (``$``, ``$$`` or ``$variable`` rooted), else what is wrong."""
    try:
        compiled = compile_path(path)
    except PathSyntaxError as error:
        return str(error)
    if compiled.root == "@":
        return f"the path '{path}' must begin with '$'"
    return None


def check_reference_path(path: str) -> str | None:
    """None when ``path`` is a valid Reference Path (one node: names and indexes only), else why not."""
    problem = check_path(path)
    if problem is not None:
        return problem
    compiled = compile_path(path)
    if compiled.keys is None or compiled.length:
        return (
            f"the reference path '{path}' must select a single node "
            "(no '*', '..', slices, unions, filters or functions)"
        )
    return None


def check_result_path(path: str) -> str | None:
    """None when ``path`` can be a ResultPath: a reference path into the state input, else why not."""
    problem = check_reference_path(path)
    if problem is not None:
        return problem
    if compile_path(path).root != "$":
        return (
            f"the ResultPath '{path}' must refer to the state input ('$...'), not the context or a variable"
        )
    return None


def render_json(value: Any) -> str:
    """A value rendered as AWS renders JSON in a cause: compact, key order kept, non-ASCII as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
