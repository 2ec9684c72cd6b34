"""The dashboard at ``/ui/``: a Starlette app of server-rendered pages over the runtime's client.

Pages (pages.py): overview (live numbers), executions (filtered, paginated), one execution
(graph, history, live while it runs), state machines (definition, graph, start), validation of
a pasted definition, dead letters, login. Actions (actions.py) are POSTs with a CSRF token that
first show a confirmation page; each one done is logged (``redstep.dashboard``) with who did it.
Access (access.py): nothing but the login and the static files without a session.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.staticfiles import StaticFiles

from orchestrator.dashboard.access import BASE, Page, actor, current_session, viewer
from orchestrator.dashboard.actions import Actions
from orchestrator.dashboard.auth import Sessions
from orchestrator.dashboard.pages import Pages
from orchestrator.dashboard.rendering import Renderer, see
from orchestrator.runtime.client import Client

STATIC = Path(__file__).with_name("static")


def create_dashboard(client: Client, credentials: dict[str, str] | None) -> Starlette:
    """The dashboard's app, to mount at ``/ui``; ``credentials`` None: open (``--no-auth``)."""
    sessions = Sessions(credentials)
    renderer = Renderer(sessions)
    pages = Pages(client, renderer)
    actions = Actions(pages)

    def page(endpoint: Page) -> Any:
        return viewer(sessions, endpoint)

    def action(endpoint: Page) -> Any:
        return actor(sessions, endpoint, renderer.refused, renderer.busy)

    routes = [
        Route("/", page(pages.overview)),
        Route("/overview.json", page(pages.overview_json)),
        Route("/executions", page(pages.executions)),
        Route("/executions/{name}", page(pages.execution)),
        Route("/executions/{name}/history", page(pages.history)),
        Route("/executions/{name}/stop", action(actions.stop), methods=["POST"]),
        Route("/executions/{name}/redrive", action(actions.redrive), methods=["POST"]),
        Route("/state-machines", page(pages.machines)),
        Route("/state-machines/{name}", page(pages.machine)),
        Route("/state-machines/{name}/start", action(actions.start), methods=["POST"]),
        Route("/validate", page(pages.validate_page)),
        Route("/validate", action(pages.validate_post), methods=["POST"]),
        Route("/dead-letters", page(pages.dead_letters)),
        Route("/dead-letters/redrive", action(actions.letters_redrive), methods=["POST"]),
        Route("/dead-letters/purge", action(actions.letters_purge), methods=["POST"]),
        Route("/login", pages.login_page),
        Route("/login", pages.login, methods=["POST"]),
        Route("/logout", action(actions.logout), methods=["POST"]),
    ]

    async def missing(request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException) and exc.status_code == 405:
            return Response(f"{request.method} is not allowed here", status_code=405, media_type="text/plain")
        session, _ = current_session(request, sessions)
        if session is None:
            return see(f"{BASE}/login")
        request.state.session = session
        return renderer.not_found(request, f"No page at {request.url.path}.")

    app = Starlette(routes=routes, exception_handlers={404: missing, 405: missing})
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
