"""The dashboard's login POST is read only up to a small limit: a huge body is refused, not held.

The app is ``redstep serve``'s own (``build_app``) on the session's redis-server, called as
ASGI directly so that the test sees how much of the body the app asked for.
"""

from __future__ import annotations

import asyncio
from typing import Any

from orchestrator.api.config import ApiSettings
from orchestrator.api.server import build_app
from orchestrator.dashboard.auth import COOKIE
from orchestrator.settings import Settings

KEY_ID, SECRET = "AKIDDASHBOARD0001", "dashboard/Secret+Key/000000000000000000000"
LIMIT = 64 * 1024  # what a login form may be, at most
CHUNK = 16 * 1024
CHUNKS = 64  # 1 MiB in all: many times the limit


class Upload:
    """An ASGI conversation: a login POST sent in chunks, and what the app answered."""

    def __init__(self, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> None:
        self.chunks = chunks
        self.headers = headers
        self.taken = 0
        self.status: int | None = None
        self.response_headers: list[tuple[bytes, bytes]] = []
        self.body = b""

    async def receive(self) -> dict[str, Any]:
        if self.taken < len(self.chunks):
            self.taken += 1
            return {
                "type": "http.request",
                "body": self.chunks[self.taken - 1],
                "more_body": self.taken < len(self.chunks),
            }
        await asyncio.Event().wait()  # the client sent everything and waits for the answer
        raise AssertionError("unreachable")

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.response_headers = message.get("headers", [])
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    def scope(self) -> dict[str, Any]:
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/ui/login",
            "raw_path": b"/ui/login",
            "root_path": "",
            "query_string": b"",
            "headers": [
                (b"host", b"127.0.0.1"),
                (b"content-type", b"application/x-www-form-urlencoded"),
                *self.headers,
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }


def _post(settings: Settings, upload: Upload) -> Upload:
    app = build_app(settings, ApiSettings(region="us-east-1", account_id="000000000000"), {KEY_ID: SECRET})
    asyncio.run(asyncio.wait_for(app(upload.scope(), upload.receive, upload.send), 30))
    return upload


def _huge_form() -> list[bytes]:
    first = f"access_key_id={KEY_ID}&secret_access_key=".encode()
    return [first + b"x" * (CHUNK - len(first))] + [b"x" * CHUNK] * (CHUNKS - 1)


def test_a_login_body_over_the_limit_without_a_length_is_refused_before_it_is_all_read(
    settings: Settings,
) -> None:
    upload = _post(settings, Upload(_huge_form(), [(b"transfer-encoding", b"chunked")]))

    assert upload.status == 413
    assert upload.taken <= LIMIT // CHUNK + 1 < CHUNKS
    assert b"at most 64 KiB" in upload.body
    assert not any(
        name == b"set-cookie" and value.startswith(COOKIE.encode()) for name, value in upload.response_headers
    )


def test_a_login_body_declared_over_the_limit_is_refused_unread(settings: Settings) -> None:
    length = str(CHUNK * CHUNKS).encode()
    upload = _post(settings, Upload(_huge_form(), [(b"content-length", length)]))

    assert upload.status == 413
    assert upload.taken == 0


def test_a_login_body_within_the_limit_is_read_as_a_form(settings: Settings) -> None:
    form = f"access_key_id={KEY_ID}&secret_access_key=wrong&csrf=forged".encode()
    upload = _post(settings, Upload([form[:10], form[10:]], [(b"content-length", str(len(form)).encode())]))

    # Read whole and parsed: refused for its forged token, as any login without a valid one is.
    assert upload.status == 403
    assert upload.taken == 2
    assert b"security token is missing, wrong or expired" in upload.body
