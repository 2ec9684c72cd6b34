"""JSONata for ASL states whose query language is JSONata.

The engine calls :func:`is_expression`, :func:`evaluate`, :func:`evaluate_as`, :func:`fill`
and :func:`compile_expression`; see :mod:`orchestrator.asl.query_jsonata.evaluation` for the
rules they follow and :mod:`orchestrator.asl.query_jsonata.functions` for the functions
Step Functions adds to JSONata.
"""

from orchestrator.asl.query_jsonata.evaluation import (
    compact_json,
    compile_expression,
    describe_jsonata_error,
    evaluate,
    evaluate_as,
    expression_body,
    fill,
    is_expression,
    json_type,
)

__all__ = [
    "compact_json",
    "compile_expression",
    "describe_jsonata_error",
    "evaluate",
    "evaluate_as",
    "expression_body",
    "fill",
    "is_expression",
    "json_type",
]
