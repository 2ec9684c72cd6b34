"""The dashboard's actions: each a POST with a CSRF token (checked by access.actor) that first
shows a confirmation page, and is logged with who did it."""

from __future__ import annotations

import logging
import time
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from orchestrator.dashboard.access import BASE, set_cookie
from orchestrator.dashboard.auth import Session
from orchestrator.dashboard.pages import Pages
from orchestrator.dashboard.rendering import see
from orchestrator.protocol.decoding import strict_loads
from orchestrator.runtime.client import ExecutionNotFound, NotRedrivable

log = logging.getLogger("redstep.dashboard")


class Actions:
    """The actions, next to the pages they come from (they show those again on bad input)."""

    def __init__(self, pages: Pages) -> None:
        self.pages = pages
        self.client, self.catalog, self.letters = pages.client, pages.catalog, pages.letters
        self.render, self.not_found, self.sessions = pages.render, pages.not_found, pages.sessions
        self.machine_view = pages.machine_view

    def confirmation(
        self, request: Request, question: str, fields: dict[str, str], button: str
    ) -> Response | None:
        """The confirmation page, unless the form says it was confirmed."""
        if request.state.form.get("confirmed") == "yes":
            return None
        return self.render(
            request,
            "confirm.html",
            question=question,
            action=request.url.path,
            fields=fields,
            button=button,
            title="Confirm",
        )

    async def stop(self, request: Request, session: Session) -> Response:
        name = request.path_params["name"]
        described = await run_in_threadpool(self.client.describe, name)
        if described is None:
            return self.not_found(request, f"No execution named “{name}”.")
        asked = self.confirmation(request, f"Stop execution “{name}”? It ends ABORTED.", {}, "Stop it")
        if asked is not None:
            return asked
        if described["status"] == "RUNNING":
            cause = f"stopped from the dashboard by {session.user}"
            await run_in_threadpool(self.client.stop_execution, name, "Dashboard.Stopped", cause)
            log.info("dashboard: %s stopped execution %s", session.user, name)
        return see(f"{BASE}/executions/{quote(name, safe='')}")

    async def redrive(self, request: Request, session: Session) -> Response:
        name = request.path_params["name"]
        asked = self.confirmation(
            request, f"Redrive execution “{name}” from the state where it stopped?", {}, "Redrive it"
        )
        if asked is not None:
            return asked
        try:
            await run_in_threadpool(self.client.redrive, name)
        except ExecutionNotFound:
            return self.not_found(request, f"No execution named “{name}”.")
        except NotRedrivable as error:
            return self.render(
                request,
                "refused.html",
                409,
                why=f"Execution “{name}” cannot be redriven: {error}",
                title="Refused",
            )
        log.info("dashboard: %s redrove execution %s", session.user, name)
        return see(f"{BASE}/executions/{quote(name, safe='')}")

    async def start(self, request: Request, session: Session) -> Response:
        name = request.path_params["name"]
        entry = await run_in_threadpool(self.catalog.get, name, time.time())
        if entry is None:
            return self.not_found(request, f"No state machine named “{name}”.")
        form = request.state.form
        input_text, execution_name = (
            str(form.get("input") or "{}"),
            str(form.get("name") or "").strip() or None,
        )
        try:
            payload = strict_loads(input_text)
        except ValueError as error:
            view = self.machine_view(
                name, entry.definition, entry.revision, f"The input is not JSON: {error}", input_text
            )
            return self.render(request, "machine.html", 400, **view)
        fields = {"input": input_text, "name": execution_name or ""}
        asked = self.confirmation(
            request, f"Start an execution of “{name}” with this input?", fields, "Start it"
        )
        if asked is not None:
            return asked
        try:
            started = await run_in_threadpool(self.client.start_execution, name, payload, execution_name)
        except ValueError as error:
            view = self.machine_view(name, entry.definition, entry.revision, str(error), input_text)
            return self.render(request, "machine.html", 400, **view)
        log.info("dashboard: %s started execution %s of %s", session.user, started, name)
        return see(f"{BASE}/executions/{quote(started, safe='')}")

    async def letters_redrive(self, request: Request, session: Session) -> Response:
        queue = str(request.state.form.get("queue") or "")
        asked = self.confirmation(
            request,
            f"Send every dead letter of queue “{queue}” back to it?",
            {"queue": queue},
            "Redrive them",
        )
        if asked is not None:
            return asked
        sent = await run_in_threadpool(self.letters.redrive, None, queue or None)
        log.info(
            "dashboard: %s redrove %d dead letter(s) of queue %s", session.user, len(sent), queue or "(all)"
        )
        return see(f"{BASE}/dead-letters")

    async def letters_purge(self, request: Request, session: Session) -> Response:
        queue = str(request.state.form.get("queue") or "")
        asked = self.confirmation(
            request, f"Delete every dead letter of queue “{queue}” for good?", {"queue": queue}, "Purge them"
        )
        if asked is not None:
            return asked
        dropped = await run_in_threadpool(self.letters.purge, queue or None)
        log.info(
            "dashboard: %s purged %d dead letter(s) of queue %s", session.user, dropped, queue or "(all)"
        )
        return see(f"{BASE}/dead-letters")

    async def logout(self, request: Request, session: Session) -> Response:
        log.info("dashboard: %s logged out", session.user)
        response = see(f"{BASE}/login")
        set_cookie(response, request, self.sessions, None)
        return response
