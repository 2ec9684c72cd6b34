"""The dashboard's pages (GET, and the read-only validation and the login forms)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from orchestrator.asl.validation import validate
from orchestrator.dashboard import history_reads, reads
from orchestrator.dashboard.access import (
    BASE,
    MAX_LOGIN_BYTES,
    FormTooLarge,
    bounded_form,
    current_session,
    safe_next,
    set_cookie,
    set_login_cookie,
)
from orchestrator.dashboard.auth import LOGIN_COOKIE, Session
from orchestrator.dashboard.history_reads import HistoryReadings, read_history
from orchestrator.dashboard.rendering import Renderer, graph_or_problem, pretty, see, shown_values
from orchestrator.protocol.decoding import strict_loads
from orchestrator.runtime.catalog import Catalog
from orchestrator.runtime.client import Client
from orchestrator.runtime.dead_letters import DeadLetters
from orchestrator.runtime.keys import FINISHED_STATUSES, STATUSES

log = logging.getLogger("redstep.dashboard")
MAX_DEFINITION_CHARACTERS = 1024 * 1024
"""AWS's limit for a definition; a longer paste is refused, still shown."""
MAX_HISTORY_EVENTS = history_reads.MAX_HISTORY_EVENTS
HISTORY_ENDS = history_reads.HISTORY_ENDS
HISTORY_PAGE = 1000
"""Events a page of the history (``/executions/<name>/history``) shows."""
REDRIVABLE = frozenset(FINISHED_STATUSES) - {"SUCCEEDED"}


class Pages:
    """The pages, given the runtime's client and the renderer."""

    def __init__(self, client: Client, renderer: Renderer) -> None:
        self.client = client
        self.catalog = Catalog(client.redis, client.keys)
        self.letters = DeadLetters(client.redis, client.settings)
        self.renderer = renderer
        self.render, self.not_found = renderer.render, renderer.not_found
        self.sessions = renderer.sessions
        self.readings = HistoryReadings()

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
            self.readings.forget(name)
            return None
        # The graph is read from the whole history (at most ~25,000 events: the runner's
        # limit); a running execution's page, asked for again and again, reads only the
        # events added since its last view (history_reads says when it reads afresh).
        reading, length = read_history(self.readings, self.client, name, described)
        first, latest, hidden = reading.ends(length)
        course = reading.course.course(described["status"])
        definition = self._definition(described["stateMachine"], described.get("stateMachineVersion"))
        graph, graph_problem = graph_or_problem(
            definition, course.statuses(), course.taken, f"Graph of execution {name}"
        )
        started = first[0]["timestamp"] if first else described.get("startDate")
        runs = {state: shown_values(run.to_dict()) for state, run in course.runs.items()}
        if described["status"] == "RUNNING":
            self.readings.keep(name, reading)
        return {
            "execution": described,
            "shown": shown_values({key: described.get(key) for key in ("input", "output", "error", "cause")}),
            "history": first if hidden else first + latest,
            "latest": latest if hidden else [],
            "history_length": reading.count,
            "started": started,
            "graph": graph,
            "graph_problem": graph_problem,
            "runs_json": json.dumps(runs).replace("</", "<\\/"),
            "stoppable": described["status"] == "RUNNING",
            "redrivable": described["status"] in REDRIVABLE,
        }

    async def history(self, request: Request, session: Session) -> Response:
        """One page of an execution's history, ``HISTORY_PAGE`` events from the ``from``-th."""
        name = request.path_params["name"]
        asked = request.query_params.get("from", "1")
        first = max(1, int(asked)) if asked.isdigit() else 1
        view = await run_in_threadpool(self._history_view, name, first)
        if view is None:
            return self.not_found(request, f"No execution named “{name}”.")
        return self.render(request, "history.html", title=f"History of execution {name}", **view)

    def _history_view(self, name: str, first: int) -> dict[str, Any] | None:
        described = self.client.describe(name)
        if described is None:
            return None
        length = self.client.history_length(name)
        last_page = max(1, length - HISTORY_PAGE + 1)
        if first > length:  # past the end (a stale link): the latest page
            first = last_page
        events = self.client.history_range(name, first - 1, first + HISTORY_PAGE - 2)
        start = self.client.history_range(name, 0, 0)
        return {
            "execution": described,
            "history": events,
            "history_length": length,
            "first": first,
            "previous": max(1, first - HISTORY_PAGE) if first > 1 else None,
            "following": first + HISTORY_PAGE if first + HISTORY_PAGE <= length else None,
            "last_page": last_page,
            "started": start[0]["timestamp"] if start else described.get("startDate"),
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
            request, "machine.html", **self.machine_view(entry.name, entry.definition, entry.revision)
        )

    def machine_view(
        self, name: str, text: str, revision: str, problem: str | None = None, input_text: str = "{}"
    ) -> dict[str, Any]:
        try:
            definition = json.loads(text)
        except ValueError:
            definition = None
        graph, graph_problem = graph_or_problem(definition, None, None, f"Graph of state machine {name}")
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

    async def login_page(self, request: Request) -> Response:
        session, _ = current_session(request, self.sessions)
        target = safe_next(request.query_params.get("next"))
        if session is not None:
            return see(target)
        return self._login_form(request, 200, target, None)

    async def login(self, request: Request) -> Response:
        try:
            form = await bounded_form(request, MAX_LOGIN_BYTES)
        except FormTooLarge:
            log.warning("dashboard: a login form over %d bytes was refused unread", MAX_LOGIN_BYTES)
            problem = f"A login form is at most {MAX_LOGIN_BYTES // 1024} KiB; nothing was tried."
            return self._login_form(request, 413, f"{BASE}/", problem)
        target = safe_next(str(form.get("next") or ""))
        token = form.get("csrf")
        if not self.sessions.login_csrf_ok(request.cookies.get(LOGIN_COOKIE), _text(token)):
            # Another site's form, or a login page left open too long: no login is tried.
            log.warning("dashboard: a login without a valid login form token was refused")
            problem = (
                "This login form's security token is missing, wrong or expired, so nothing was"
                " tried: log in again with this fresh form."
            )
            return self._login_form(request, 403, target, problem)
        key_id, secret = (
            str(form.get("access_key_id") or "").strip(),
            str(form.get("secret_access_key") or ""),
        )
        session = self.sessions.log_in(key_id, secret)
        if session is None:
            # Only the id's start: someone may type the secret into the id's box by mistake.
            log.warning("dashboard: a login as %r... was refused", key_id[:4])
            problem = "That access key id and secret are not a pair this server accepts."
            return self._login_form(request, 401, target, problem)
        log.info("dashboard: %s logged in", session.user)
        response = see(target)
        set_cookie(response, request, self.sessions, session)
        set_login_cookie(response, request, None)  # its token is spent
        return response

    def _login_form(self, request: Request, status: int, target: str, problem: str | None) -> Response:
        """The login page, with its pre-session CSRF cookie and the field that goes with it."""
        cookie = self.sessions.login_cookie(request.cookies.get(LOGIN_COOKIE))
        response = self.render(
            request,
            "login.html",
            status,
            target=target,
            problem=problem,
            login_token=self.sessions.login_csrf_token(cookie),
            title="Log in",
        )
        set_login_cookie(response, request, cookie)
        return response


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _check_definition(text: str) -> tuple[list[dict[str, str]], str | None, str | None]:
    if len(text) > MAX_DEFINITION_CHARACTERS:
        problem = (
            f"the definition is {len(text):,} characters long;"
            f" AWS accepts at most {MAX_DEFINITION_CHARACTERS:,}"
        )
        return [{"where": "/", "message": problem}], None, "No graph: the definition is too large."
    try:
        definition = strict_loads(text)
    except ValueError as error:
        return [{"where": "/", "message": f"not JSON: {error}"}], None, "No graph: the text is not JSON."
    problems = [{"where": problem.where, "message": problem.message} for problem in validate(definition)]
    graph, graph_problem = graph_or_problem(definition, None, None, "Graph of the pasted definition")
    return problems, graph, graph_problem
