"""The dashboard at ``/ui/``: a Starlette app of server-rendered pages over the runtime's client.

Pages: overview (live numbers), executions (filtered, paginated), one execution (graph,
history, live while it runs), state machines (definition, graph, start), validation of a
pasted definition, dead letters, login. Actions are POSTs with a CSRF token that first show a
confirmation page; each one done is logged (``redstep.dashboard``) with who did it.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.staticfiles import StaticFiles

from orchestrator.asl.validation import validate
from orchestrator.dashboard import reads
from orchestrator.dashboard.access import BASE, actor, current_session, safe_next, set_cookie, viewer
from orchestrator.dashboard.auth import Session, Sessions
from orchestrator.dashboard.graph import GraphError, lay_out, render_svg
from orchestrator.dashboard.runs import read_course
from orchestrator.runtime.catalog import Catalog
from orchestrator.runtime.client import Client, ExecutionNotFound, NotRedrivable
from orchestrator.runtime.dead_letters import DeadLetters
from orchestrator.runtime.keys import FINISHED_STATUSES, STATUSES

log = logging.getLogger("redstep.dashboard")
STATIC = Path(__file__).with_name("static")
MAX_DEFINITION_CHARACTERS = 1024 * 1024
"""AWS's limit for a definition; a longer paste is refused, still shown."""
MAX_HISTORY_EVENTS = 5000
SHOWN_VALUE_CHARACTERS = 20_000
REDRIVABLE = frozenset(FINISHED_STATUSES) - {"SUCCEEDED"}


class Dashboard:
    """The pages and actions, given the runtime's client and the sessions."""

    def __init__(self, client: Client, sessions: Sessions) -> None:
        self.client = client
        self.catalog = Catalog(client.redis, client.keys)
        self.letters = DeadLetters(client.redis, client.settings)
        self.sessions = sessions
        self.templates = Environment(
            loader=PackageLoader("orchestrator.dashboard", "templates"),
            autoescape=select_autoescape(default=True),
        )
        self.templates.filters.update(
            pretty=pretty, when=when, seconds=seconds, q=lambda text: quote(str(text), safe="")
        )

    # -- rendering -----------------------------------------------------------------------------

    def render(self, request: Request, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        session: Session | None = getattr(request.state, "session", None)
        page = self.templates.get_template(template).render(
            base=BASE,
            session=session,
            csrf=self.sessions.csrf_token(session) if session else "",
            open_access=self.sessions.open,
            path=request.url.path,
            **values,
        )
        return HTMLResponse(page, status_code=status_code, headers=_SECURITY_HEADERS)

    def not_found(self, request: Request, what: str) -> HTMLResponse:
        return self.render(request, "not_found.html", 404, what=what, title="Not found")

    def refused(self, request: Request, why: str) -> HTMLResponse:
        return self.render(request, "refused.html", 403, why=why, title="Refused")

    # -- pages ---------------------------------------------------------------------------------

    async def overview(self, request: Request, session: Session) -> Response:
        numbers = await run_in_threadpool(reads.overview, self.client)
        return self.render(request, "overview.html", numbers=numbers, statuses=STATUSES, title="Overview")

    async def overview_json(self, request: Request, session: Session) -> Response:
        numbers = await run_in_threadpool(reads.overview, self.client)
        return JSONResponse(numbers, headers={"Cache-Control": "no-store"})

    async def executions(self, request: Request, session: Session) -> Response:
        query = request.query_params
        filters = {
            "machine": query.get("machine") or None,
            "status": query.get("status") if query.get("status") in STATUSES else None,
            "prefix": query.get("prefix") or None,
        }
        before = reads.Cursor.parse(query.get("before"))
        page = await run_in_threadpool(lambda: reads.executions_page(self.client, before=before, **filters))
        following = None
        if page.next is not None:
            kept = {key: value for key, value in filters.items() if value}
            following = f"{BASE}/executions?{urlencode({**kept, 'before': page.next.text()})}"
        machines = await run_in_threadpool(self.catalog.names)
        return self.render(
            request,
            "executions.html",
            page=page,
            filters=filters,
            following=following,
            first=before is not None,
            machines=machines,
            statuses=STATUSES,
            title="Executions",
        )

    async def execution(self, request: Request, session: Session) -> Response:
        name = request.path_params["name"]
        view = await run_in_threadpool(self._execution_view, name)
        if view is None:
            return self.not_found(request, f"No execution named “{name}”.")
        template = "execution_live.html" if request.query_params.get("part") == "live" else "execution.html"
        return self.render(request, template, title=f"Execution {name}", **view)

    def _execution_view(self, name: str) -> dict[str, Any] | None:
        described = self.client.describe(name)
        if described is None:
            return None
        length = self.client.history_length(name)
        history = self.client.history_range(name, 0, MAX_HISTORY_EVENTS - 1)
        course = read_course(history, described["status"])
        definition = self._definition(described["stateMachine"], described.get("stateMachineVersion"))
        graph, graph_problem = _graph(
            definition, course.statuses(), course.taken, f"Graph of execution {name}"
        )
        started = history[0]["timestamp"] if history else described.get("startDate")
        runs = {state: _shown(run.to_dict()) for state, run in course.runs.items()}
        return {
            "execution": described,
            "shown": _shown({key: described.get(key) for key in ("input", "output", "error", "cause")}),
            "history": history,
            "history_length": length,
            "started": started,
            "graph": graph,
            "graph_problem": graph_problem,
            "runs_json": json.dumps(runs).replace("</", "<\\/"),
            "stoppable": described["status"] == "RUNNING",
            "redrivable": described["status"] in REDRIVABLE,
        }

    def _definition(self, machine: str, version: str | None) -> Any:
        text = self.catalog.definition_at(machine, version) if version else None
        if text is None:
            raw = self.client.redis.hget(self.client.keys.machines, machine)
            text = raw.decode() if raw is not None else None
        try:
            return json.loads(text) if text is not None else None
        except ValueError:
            return None

    async def machines(self, request: Request, session: Session) -> Response:
        names = await run_in_threadpool(self.catalog.names)
        return self.render(request, "machines.html", names=names, title="State machines")

    async def machine(self, request: Request, session: Session) -> Response:
        name = request.path_params["name"]
        entry = await run_in_threadpool(self.catalog.get, name, time.time())
        if entry is None:
            return self.not_found(request, f"No state machine named “{name}”.")
        return self.render(
            request, "machine.html", **self._machine_view(entry.name, entry.definition, entry.revision)
        )

    def _machine_view(
        self, name: str, text: str, revision: str, problem: str | None = None, input_text: str = "{}"
    ) -> dict[str, Any]:
        try:
            definition = json.loads(text)
        except ValueError:
            definition = None
        graph, graph_problem = _graph(definition, None, None, f"Graph of state machine {name}")
        return {
            "name": name,
            "revision": revision,
            "definition": pretty(definition) if definition is not None else text,
            "graph": graph,
            "graph_problem": graph_problem,
            "start_problem": problem,
            "input_text": input_text,
            "title": f"State machine {name}",
        }

    async def validate_page(self, request: Request, session: Session) -> Response:
        return self.render(
            request,
            "validate.html",
            text="",
            problems=None,
            graph=None,
            graph_problem=None,
            title="Validate a definition",
        )

    async def validate_post(self, request: Request, session: Session) -> Response:
        text = str(request.state.form.get("definition") or "")
        problems, graph, graph_problem = await run_in_threadpool(_check_definition, text)
        return self.render(
            request,
            "validate.html",
            text=text,
            problems=problems,
            graph=graph,
            graph_problem=graph_problem,
            title="Validate a definition",
        )

    async def dead_letters(self, request: Request, session: Session) -> Response:
        letters = await run_in_threadpool(self.letters.list, None, 200)
        queues = await run_in_threadpool(self.letters.queues)
        return self.render(request, "dead_letters.html", letters=letters, queues=queues, title="Dead letters")

    # -- actions -------------------------------------------------------------------------------

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
        return _see(f"{BASE}/executions/{quote(name, safe='')}")

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
        return _see(f"{BASE}/executions/{quote(name, safe='')}")

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
            payload = json.loads(input_text)
        except ValueError as error:
            view = self._machine_view(
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
            view = self._machine_view(name, entry.definition, entry.revision, str(error), input_text)
            return self.render(request, "machine.html", 400, **view)
        log.info("dashboard: %s started execution %s of %s", session.user, started, name)
        return _see(f"{BASE}/executions/{quote(started, safe='')}")

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
        return _see(f"{BASE}/dead-letters")

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
        return _see(f"{BASE}/dead-letters")

    async def logout(self, request: Request, session: Session) -> Response:
        log.info("dashboard: %s logged out", session.user)
        response = _see(f"{BASE}/login")
        set_cookie(response, request, self.sessions, None)
        return response

    # -- login ---------------------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        session, _ = current_session(request, self.sessions)
        target = safe_next(request.query_params.get("next"))
        if session is not None:
            return _see(target)
        return self.render(request, "login.html", target=target, problem=None, title="Log in")

    async def login(self, request: Request) -> Response:
        form = await request.form()
        target = safe_next(str(form.get("next") or ""))
        key_id, secret = (
            str(form.get("access_key_id") or "").strip(),
            str(form.get("secret_access_key") or ""),
        )
        session = self.sessions.log_in(key_id, secret)
        if session is None:
            log.warning("dashboard: a login as %r was refused", key_id[:40])
            problem = "That access key id and secret are not a pair this server accepts."
            return self.render(request, "login.html", 401, target=target, problem=problem, title="Log in")
        log.info("dashboard: %s logged in", session.user)
        response = _see(target)
        set_cookie(response, request, self.sessions, session)
        return response


def create_dashboard(client: Client, credentials: dict[str, str] | None) -> Starlette:
    """The dashboard's app, to mount at ``/ui``; ``credentials`` None: open (``--no-auth``)."""
    dashboard = Dashboard(client, Sessions(credentials))
    see, act = (
        (lambda page: viewer(dashboard.sessions, page)),
        (lambda action: actor(dashboard.sessions, action, dashboard.refused)),
    )
    routes = [
        Route("/", see(dashboard.overview)),
        Route("/overview.json", see(dashboard.overview_json)),
        Route("/executions", see(dashboard.executions)),
        Route("/executions/{name}", see(dashboard.execution)),
        Route("/executions/{name}/stop", act(dashboard.stop), methods=["POST"]),
        Route("/executions/{name}/redrive", act(dashboard.redrive), methods=["POST"]),
        Route("/state-machines", see(dashboard.machines)),
        Route("/state-machines/{name}", see(dashboard.machine)),
        Route("/state-machines/{name}/start", act(dashboard.start), methods=["POST"]),
        Route("/validate", see(dashboard.validate_page)),
        Route("/validate", act(dashboard.validate_post), methods=["POST"]),
        Route("/dead-letters", see(dashboard.dead_letters)),
        Route("/dead-letters/redrive", act(dashboard.letters_redrive), methods=["POST"]),
        Route("/dead-letters/purge", act(dashboard.letters_purge), methods=["POST"]),
        Route("/login", dashboard.login_page),
        Route("/login", dashboard.login, methods=["POST"]),
        Route("/logout", act(dashboard.logout), methods=["POST"]),
    ]

    async def missing(request: Request, exc: Exception) -> Response:
        code = exc.status_code if isinstance(exc, HTTPException) else 500
        if code == 405:
            return PlainError(f"{request.method} is not allowed here", 405)
        session, _ = current_session(request, dashboard.sessions)
        if session is None:
            return _see(f"{BASE}/login")
        request.state.session = session
        return dashboard.not_found(request, f"No page at {request.url.path}.")

    app = Starlette(routes=routes, exception_handlers={404: missing, 405: missing})
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def PlainError(text: str, status: int) -> Response:
    return Response(text, status_code=status, media_type="text/plain")


# -- helpers ---------------------------------------------------------------------------------------

_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
        " frame-ancestors 'none'"
    ),
}


def _see(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _graph(
    definition: Any, statuses: dict[str, str] | None, taken: set[tuple[str, str]] | None, title: str
) -> tuple[str | None, str | None]:
    if definition is None:
        return None, "The definition could not be read, so there is no graph."
    try:
        return render_svg(lay_out(definition), statuses, taken, title), None
    except GraphError as error:
        return None, f"No graph: {error}."
    except RecursionError:
        return None, "No graph: the definition nests too deeply to draw."


def _check_definition(text: str) -> tuple[list[dict[str, str]], str | None, str | None]:
    if len(text) > MAX_DEFINITION_CHARACTERS:
        problem = (
            f"the definition is {len(text):,} characters long;"
            f" AWS accepts at most {MAX_DEFINITION_CHARACTERS:,}"
        )
        return [{"where": "/", "message": problem}], None, "No graph: the definition is too large."
    try:
        definition = json.loads(text)
    except ValueError as error:
        return [{"where": "/", "message": f"not JSON: {error}"}], None, "No graph: the text is not JSON."
    except RecursionError:
        return [{"where": "/", "message": "not JSON this server can read: it nests too deeply"}], None, None
    problems = [{"where": problem.where, "message": problem.message} for problem in validate(definition)]
    graph, graph_problem = _graph(definition, None, None, "Graph of the pasted definition")
    return problems, graph, graph_problem


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def _shown(values: dict[str, Any]) -> dict[str, Any]:
    """Values as a page shows them: JSON text, cut short when long (the API has them whole)."""
    shown: dict[str, Any] = {}
    for key, value in values.items():
        if key in ("input", "output"):
            text = pretty(value) if value is not None else None
            if text is not None and len(text) > SHOWN_VALUE_CHARACTERS:
                text = text[:SHOWN_VALUE_CHARACTERS] + f"\n… ({len(text):,} characters in all)"
            shown[key] = text
        else:
            shown[key] = value
    return shown


def when(timestamp: Any) -> str:
    if not isinstance(timestamp, int | float):
        return ""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def seconds(value: Any) -> str:
    if not isinstance(value, int | float):
        return "–"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"
