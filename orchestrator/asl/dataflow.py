"""How a state's input becomes its effective input and its result becomes its output.

JSONPath states use InputPath, Parameters, ResultSelector, ResultPath and OutputPath;
JSONata states use Arguments, Output and ``$states``. Both may Assign variables. The engine
calls these functions without caring which query language a state speaks.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any, Protocol

from orchestrator.asl import payload, query_jsonata
from orchestrator.asl.compiled import CompiledState
from orchestrator.asl.definition import JSONATA, JSONPATH

_MISSING: Any = object()


@functools.lru_cache(maxsize=4096)
def iso_time(epoch: float) -> str:
    """An epoch time as AWS writes it in the context object (ISO 8601, milliseconds, Z)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


class ContextSource(Protocol):
    """Who builds a state's context object: the run deciding the step (``orchestrator.asl.runner``)."""

    def context_object(self, thread: Any, state: CompiledState) -> dict[str, Any]: ...


class StateData:
    """What one state sees while it runs: its raw input, context object and variables.

    Attributes:
        compiled: the state, as its machine was parsed.
        state: the state's definition.
        jsonata: whether the state speaks JSONata.
        raw_input: the state's input.
        variables: the workflow variables it sees.
    """

    __slots__ = ("_context", "_run", "_thread", "compiled", "jsonata", "raw_input", "state", "variables")

    def __init__(
        self,
        compiled: CompiledState,
        raw_input: Any,
        variables: dict[str, Any],
        run: ContextSource,
        thread: Any,
    ) -> None:
        """Make the view; ``run.context_object(thread, compiled)`` builds the context object.

        The context object is built on first use only, because most states never read it,
        and from the run rather than a closure so that a step allocates nothing for it.
        """
        self.compiled = compiled
        self.jsonata = compiled.jsonata
        self.state = compiled.definition
        self.raw_input = raw_input
        self.variables = variables
        self._run = run
        self._thread = thread
        self._context: dict[str, Any] | None = None

    @property
    def context(self) -> dict[str, Any]:
        """The context object, built on first use."""
        if self._context is None:
            self._context = self._run.context_object(self._thread, self.compiled)
        return self._context

    @property
    def language(self) -> str:
        return JSONATA if self.compiled.jsonata else JSONPATH

    def states_binding(self, **extra: Any) -> dict[str, Any]:
        """The ``$states`` object a JSONata expression sees."""
        return {"input": self.raw_input, "context": self.context, **extra}

    def scope(self, document: Any) -> payload.Scope:
        return payload.Scope(document, self._context, self.variables, self._make_context)

    def _make_context(self) -> dict[str, Any]:
        return self.context

    def resolve(self, document: Any) -> Any:
        """A path resolver over ``document``, the context object and the variables."""
        scope = self.scope(document)
        return lambda path: payload.resolve_path(path, scope)

    # -- input -------------------------------------------------------------------------------

    def selected_input(self) -> Any:
        """JSONPath: the input after InputPath. JSONata: the raw input."""
        compiled = self.compiled
        input_path = compiled.input_path
        if input_path == "$" or compiled.jsonata:
            return self.raw_input
        return payload.select_input(input_path, self.raw_input, self.scope(self.raw_input))

    def effective_input(self, template_field: str = "Parameters") -> Any:
        """The input after InputPath and Parameters (JSONPath), or after Arguments (JSONata)."""
        if self.compiled.input_as_is and template_field == "Parameters":
            return self.raw_input
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
        compiled = self.compiled
        if compiled.jsonata:
            if compiled.result_as_is:
                return result
            return self.evaluate_jsonata(self.state["Output"], "Output", result=result)
        if selector and compiled.has_result_selector:
            result = payload.fill_template(self.state["ResultSelector"], self.scope(result), "ResultSelector")
        if compiled.result_as_is:
            return result
        merged = payload.merge_result(compiled.result_path, self.raw_input, result)
        output_path = compiled.output_path
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
