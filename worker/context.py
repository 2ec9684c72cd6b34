"""The ``context`` a function receives, shaped like AWS Lambda's Python context object.

Besides Lambda's attributes it carries where the function's data lives (``redis`` and
``prefix``), so a function such as AddDragon needs no global connection and a unit test
can hand it any store it likes. It is declared with the one invocation path the workers and
the local runner share (orchestrator.protocol.invocation) and named here for functions to import.
"""

from __future__ import annotations

from orchestrator.protocol.invocation import LambdaContext

DEFAULT_TIMEOUT_SECONDS = 180.0
"""The time a job's tasks share when its RQ job names no timeout."""

__all__ = ["DEFAULT_TIMEOUT_SECONDS", "LambdaContext"]
