"""How a state's input becomes its effective input and its result becomes its output.

JSONPath states use InputPath, Parameters, ResultSelector, ResultPath and OutputPath;
JSONata states use Arguments, Output and ``$states``. Both may Assign variables. The engine
calls these functions without caring which query language a state speaks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from orchestrator.asl import payload, query_jsonata
from orchestrator.asl.definition import JSONATA

_MISSING: Any = object()


@functools.lru_cache(maxsize=4096)
def iso_time(epoch: float) -> str:
    """An epoch time as AWS writes it in the context object (ISO 8601, milliseconds, Z)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


class StateData:
    """What one state sees while it runs: its raw input, context object and variables."""

    __slots__ = ("_context", "_make_context", "language", "raw_input", "state", "variables")

    def __init__(
        self,
        state: dict[str, Any],
        language: str,
        raw_input: Any,
        make_context: Callable[[], dict[str, Any]],
        variables: dict[str, Any],
    ) -> None:
        self.state = state
        self.language = language
        self.raw_input = raw_input
        self._make_context = make_context
        self._context: dict[str, Any] | None = None
        self.variables = variables

    @property
    def context(self) -> dict[str, Any]:
        """The context object, built on first use: most states never read it."""
        if self._context is None:
            self._context = self._make_context()
        return self._context

    @property
    def jsonata(self) -> bool:
        return self.language == JSONATA

    def states_binding(self, **extra: Any) -> dict[str, Any]:
        """The ``$states`` object a JSONata expression sees."""
        return {"input": self.raw_input, "context": self.context, **extra}

    def scope(self, document: Any) -> payload.Scope:
        return payload.Scope(document, self.context, self.variables)

    def resolve(self, document: Any) -> Any:
        """A path resolver over ``document``, the context object and the variables."""
        scope = self.scope(document)
        return lambda path: payload.resolve_path(path, scope)

    # -- input -------------------------------------------------------------------------------

    def selected_input(self) -> Any:
        """JSONPath: the input after InputPath. JSONata: the raw input."""
        input_path = self.state.get("InputPath", "$")
        if self.jsonata or input_path == "$":
            return self.raw_input
        return payload.select_input(input_path, self.raw_input, self.scope(self.raw_input))

    def effective_input(self, template_field: str = "Parameters") -> Any:
        """The input after InputPath and Parameters (JSONPath), or after Arguments (JSONata)."""
        if self.jsonata:
            if "Arguments" not in self.state:
                return self.raw_input
            return self.evaluate_jsonata(self.state["Arguments"], "Arguments")
        selected = self.selected_input()
        if template_field in self.state:
            return payload.fill_template(self.state[template_field], self.scope(selected), template_field)
        return selected

    def evaluate_jsonata(self, template: Any, field: str, **extra: Any) -> Any:
        return query_jsonata.fill(template, self.states_binding(**extra), self.variables, field=field)

    # -- output ------------------------------------------------------------------------------

    def output(self, result: Any, *, selector: bool = True) -> Any:
        """The state's output for ``result``: ResultSelector, ResultPath, OutputPath, or Output."""
        if self.jsonata:
            if "Output" not in self.state:
                return result
            return self.evaluate_jsonata(self.state["Output"], "Output", result=result)
        if selector and "ResultSelector" in self.state:
            result = payload.fill_template(self.state["ResultSelector"], self.scope(result), "ResultSelector")
        merged = payload.merge_result(self.state.get("ResultPath", "$"), self.raw_input, result)
        output_path = self.state.get("OutputPath", "$")
        if output_path == "$":
            return merged
        return payload.select_output(output_path, merged, self.scope(merged))

    def assignments(self, assign: Any, result: Any = _MISSING, **extra: Any) -> dict[str, Any]:
        """The variables an ``Assign`` block sets, evaluated against the current variables."""
        if not isinstance(assign, dict):
            return {}
        if self.jsonata:
            if result is not _MISSING:
                extra["result"] = result
            return query_jsonata.fill(assign, self.states_binding(**extra), self.variables, field="Assign")
        document = self.raw_input if result is _MISSING else result
        return payload.fill_template(assign, self.scope(document), "Assign")

    def catch_output(self, catcher: dict[str, Any], error_output: dict[str, Any]) -> Any:
        """The output a Catch hands to its Next state."""
        if self.jsonata:
            if "Output" not in catcher:
                return error_output
            return self.evaluate_jsonata(catcher["Output"], "Output", errorOutput=error_output)
        return payload.merge_result(catcher.get("ResultPath", "$"), self.raw_input, error_output)
