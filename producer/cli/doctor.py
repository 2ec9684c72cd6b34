"""``redstep doctor``: check every invariant of the stored state; exit 1 when one is broken.

A thin command over :func:`orchestrator.runtime.doctor.examine`. Each problem is one line:
its severity, the execution (or key) it concerns, the invariant and what to do about it.
Warnings (a callback task that waits with no timeout) are shown and do not fail the check.
Exit status: 0 healthy, 1 something broken, 2 usage.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from producer.cli import views

JsonOption = Annotated[bool, typer.Option("--json", help="Print only JSON on stdout.")]


def register(app: typer.Typer) -> None:
    """Add the ``doctor`` command to ``app``."""
    app.command("doctor")(doctor_command)


def doctor_command(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Check every invariant of the stored state (indexes, histories, stuck executions); exit 1 if broken."""
    from orchestrator.runtime.doctor import examine  # imported late: a heavy module

    settings, client = ctx.obj.connect(timeout=60)
    found = examine(client, settings)
    if json_output:
        problems = [problem.to_dict() for problem in found.problems]
        views.print_json(
            {
                "healthy": found.healthy,
                "executions": found.executions,
                "running": found.running,
                "problems": problems,
            }
        )
    else:
        for problem in found.problems:
            print(
                f"{problem.severity.upper():7} {problem.subject}  [{problem.invariant}] {problem.explanation}"
            )
        errors = sum(problem.fails for problem in found.problems)
        warnings = len(found.problems) - errors
        verdict = "healthy" if found.healthy else f"{errors} problem(s)"
        aside = f"; {warnings} warning(s), which do not fail the check" if warnings else ""
        print(f"{verdict}: checked {found.executions} execution(s), {found.running} running{aside}")
    sys.stdout.flush()
    if not found.healthy:
        raise typer.Exit(1)
