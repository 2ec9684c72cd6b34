"""A parsed state machine: the definition plus the lookups the engine needs at every step.

Parallel branches and Map item processors are state machines of their own inside a state.
Each one gets a *scope key*, a path of state names and branch indexes such as
``"Fork/1"`` or ``"Fork/1/EachItem"``, so an execution can name where a thread of control
runs with a short string and the engine finds its states in one dictionary lookup.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from orchestrator.asl.compiled import CompiledState, compile_state
from orchestrator.asl.errors import DefinitionError, Problem
from orchestrator.asl.validation import validate

JSONPATH = "JSONPath"
JSONATA = "JSONata"
ROOT = ""


@dataclass(frozen=True, slots=True)
class Scope:
    """One state machine body: the top level, a Parallel branch or a Map item processor."""

    key: str
    start_at: str
    states: dict[str, dict[str, Any]]
    query_language: str
    compiled: dict[str, CompiledState]


class StateMachine:
    """A parsed, validated definition, read-only and shared by every execution of it."""

    def __init__(self, definition: dict[str, Any], name: str) -> None:
        self.definition = definition
        self.name = name
        # Which registered version this is, when it came from the registry (see runtime.machines).
        self.version: str | None = None
        self.query_language: str = definition.get("QueryLanguage", JSONPATH)
        self.timeout_seconds: float | None = definition.get("TimeoutSeconds")
        self.scopes: dict[str, Scope] = {}
        self._collect(ROOT, definition, self.query_language)
        self.start_at = self.scopes[ROOT].start_at

    @classmethod
    def parse(cls, definition: dict[str, Any] | str, name: str = "StateMachine") -> StateMachine:
        """Parse and validate a definition given as a JSON object or JSON text.

        Raises:
            DefinitionError: listing every problem with its JSON path.
        """
        if isinstance(definition, str):
            try:
                definition = json.loads(definition)
            except ValueError as exc:
                raise DefinitionError([Problem("/", f"not valid JSON: {exc}")]) from None
            except RecursionError:
                raise DefinitionError([Problem("/", "not valid JSON: nested too deeply")]) from None
        problems = validate(definition)
        if problems:
            raise DefinitionError(problems)
        return cls(definition, name)

    def scope(self, key: str) -> Scope:
        return self.scopes[key]

    def state(self, scope_key: str, name: str) -> dict[str, Any]:
        return self.scopes[scope_key].states[name]

    def compiled_state(self, scope_key: str, name: str) -> CompiledState:
        return self.scopes[scope_key].compiled[name]

    def query_language_of(self, scope_key: str, state: dict[str, Any]) -> str:
        return state.get("QueryLanguage", self.scopes[scope_key].query_language)

    def _collect(self, key: str, body: dict[str, Any], inherited: str) -> None:
        language = body.get("QueryLanguage", inherited)
        states = body.get("States", {})
        compiled: dict[str, CompiledState] = {}
        self.scopes[key] = Scope(key, body.get("StartAt", ""), states, language, compiled)
        for state_name, state in states.items():
            prefix = f"{key}/{state_name}" if key else state_name
            state_language = state.get("QueryLanguage", language)
            compiled[state_name] = compile_state(state_name, state, state_language == JSONATA)
            if state.get("Type") == "Parallel":
                for index, branch in enumerate(state.get("Branches", [])):
                    self._collect(f"{prefix}/{index}", branch, state_language)
            elif state.get("Type") == "Map":
                processor = state.get("ItemProcessor") or state.get("Iterator") or {}
                self._collect(prefix, processor, state_language)


def child_scope(parent_key: str, state_name: str, branch: int | None = None) -> str:
    """The scope key of a Parallel branch (``branch`` given) or of a Map's item processor."""
    prefix = f"{parent_key}/{state_name}" if parent_key else state_name
    return prefix if branch is None else f"{prefix}/{branch}"
