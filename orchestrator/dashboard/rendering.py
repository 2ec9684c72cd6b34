"""How the dashboard's pages are made: Jinja2 templates (autoescaped), security headers, and
the small formats the templates use (JSON, times, durations, graphs)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from orchestrator.dashboard.access import BASE
from orchestrator.dashboard.auth import Session, Sessions
from orchestrator.dashboard.graph import GraphError, lay_out, render_svg

SHOWN_VALUE_CHARACTERS = 20_000

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
        " frame-ancestors 'none'"
    ),
}


class Renderer:
    """Renders a template into a page, with who is logged in and the session's CSRF token."""

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions
        self.templates = Environment(
            loader=PackageLoader("orchestrator.dashboard", "templates"),
            autoescape=select_autoescape(default=True),
        )
        self.templates.filters.update(
            pretty=pretty, when=when, seconds=seconds, q=lambda text: quote(str(text), safe="")
        )

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
        return HTMLResponse(page, status_code=status_code, headers=SECURITY_HEADERS)

    def not_found(self, request: Request, what: str) -> HTMLResponse:
        return self.render(request, "not_found.html", 404, what=what, title="Not found")

    def refused(self, request: Request, why: str) -> HTMLResponse:
        return self.render(request, "refused.html", 403, why=why, title="Refused")

    def busy(self, request: Request, why: str) -> HTMLResponse:
        """A temporary refusal (503): the same action a moment later can pass."""
        return self.render(request, "refused.html", 503, why=why, title="Try again")


def see(url: str) -> RedirectResponse:
    """The answer to a form that worked: go (GET) to ``url``."""
    return RedirectResponse(url, status_code=303)


def graph_or_problem(
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


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def shown_values(values: dict[str, Any]) -> dict[str, Any]:
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
