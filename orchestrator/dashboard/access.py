"""Who may see a page or take an action: the session of a request, the login redirect, CSRF.

Every page goes through :func:`viewer`, every action through :func:`actor`; neither lets a
request without a valid session through (with ``--no-auth`` a visitor is given one at once).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import Message

from orchestrator.dashboard.auth import (
    COOKIE,
    LOGIN_COOKIE,
    LOGIN_SECONDS,
    OPEN_USER,
    SESSION_SECONDS,
    Session,
    Sessions,
)
from orchestrator.runtime.optimistic import CommitConflict

log = logging.getLogger("redstep.dashboard")

BASE = "/ui"
MAX_FORM_BYTES = 4 * 1024 * 1024
"""Room for AWS's largest definition (1 MiB) or input (256 KiB) form-encoded; a longer POST is refused."""
MAX_LOGIN_BYTES = 64 * 1024
"""A login form holds a key id, a secret, its token and a path back: far less than this. It is read
before anyone is known, so anyone may send one; a longer body is refused, not held."""

Page = Callable[[Request, Session], Awaitable[Response]]


def set_cookie(response: Response, request: Request, sessions: Sessions, session: Session | None) -> None:
    """Put ``session`` (None: remove it) in the response's cookie, HttpOnly and SameSite=Strict."""
    value = None if session is None else sessions.cookie_value(session)
    _put_cookie(response, request, COOKIE, value, SESSION_SECONDS)


def set_login_cookie(response: Response, request: Request, value: str | None) -> None:
    """Put the login form's pre-session cookie (None: remove it) in the response, like a session's."""
    _put_cookie(response, request, LOGIN_COOKIE, value, LOGIN_SECONDS)


def _put_cookie(response: Response, request: Request, name: str, value: str | None, max_age: int) -> None:
    # Secure whenever the dashboard is served over HTTPS; never readable by scripts or sent cross-site.
    secure = request.url.scheme == "https"
    if value is None:
        response.delete_cookie(name, path=BASE, secure=secure, httponly=True, samesite="strict")
        return
    response.set_cookie(
        name, value, max_age=max_age, path=BASE, secure=secure, httponly=True, samesite="strict"
    )


def current_session(request: Request, sessions: Sessions) -> tuple[Session | None, bool]:
    """The request's session, and whether it is new (an open dashboard's first visit)."""
    session = sessions.read(request.cookies.get(COOKIE))
    if session is None and sessions.open:
        return sessions.new_session(OPEN_USER), True
    return session, False


def viewer(sessions: Sessions, page: Page) -> Callable[[Request], Awaitable[Response]]:
    """A GET page: without a session, a redirect to the login that comes back here."""

    async def endpoint(request: Request) -> Response:
        session, new = current_session(request, sessions)
        if session is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{BASE}/login?next={quote(target, safe='')}", status_code=303)
        request.state.session = session
        response = await page(request, session)
        if new:
            set_cookie(response, request, sessions, session)
        return response

    return endpoint


def actor(
    sessions: Sessions,
    action: Page,
    refused: Callable[[Request, str], Response],
    busy: Callable[[Request, str], Response],
) -> Callable[[Request], Awaitable[Response]]:
    """A POST action: refused (403, nothing done) without a session or with a wrong CSRF token.

    An action whose commit kept losing races to other writers (CommitConflict: nothing was
    written) is answered ``busy`` (503): the same action a moment later can pass.
    """

    async def endpoint(request: Request) -> Response:
        session = sessions.read(request.cookies.get(COOKIE))
        if session is None:
            return refused(
                request, "Your session is missing or has expired: log in again. Nothing was changed."
            )
        declared = request.headers.get("content-length", "")
        if not declared.isdigit() or int(declared) > MAX_FORM_BYTES:
            return refused(
                request, f"A form must say its length and be at most {MAX_FORM_BYTES // 2**20} MiB."
            )
        form = await request.form()
        if not sessions.csrf_ok(session, _text(form.get("csrf"))):
            return refused(
                request,
                "The form's security token is missing or wrong: reload the page and try again."
                " Nothing was changed.",
            )
        request.state.session = session
        request.state.form = form
        try:
            return await action(request, session)
        except CommitConflict as lost:
            log.warning("dashboard: %s: %s", request.url.path, lost)
            why = f"Others kept changing what this action changes ({lost}). Nothing was changed: try again."
            return busy(request, why)

    return endpoint


class FormTooLarge(Exception):
    """A form's body is longer than the limit it is read with."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the form is larger than {limit} bytes")
        self.limit = limit


async def bounded_form(request: Request, limit: int) -> FormData:
    """The request's form, read only while its body stays within ``limit`` bytes.

    Raises:
        FormTooLarge: as soon as the declared length or the bytes received pass ``limit``;
            the rest of the body is never asked for.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise FormTooLarge(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise FormTooLarge(limit)
        chunks.append(chunk)
    body = b"".join(chunks)

    async def replay() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    # starlette parses a form from the stream only, which has been read: it reads this copy.
    return await Request(request.scope, replay).form()


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def safe_next(target: str | None) -> str:
    """Where a login may send its user back to: a dashboard path only, never another site."""
    if target and target.startswith(f"{BASE}/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{BASE}/"
