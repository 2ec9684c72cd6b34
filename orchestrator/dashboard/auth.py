"""The dashboard's sessions and CSRF tokens: signed, stateless, and never carrying a secret.

A session is a cookie ``<payload>.<signature>``: the payload (base64 of JSON) names who logged
in (an access key id, never its secret), a random session id and when it expires; the
signature is an HMAC-SHA256 under the dashboard's key. The key is derived from the API's
secrets, so sessions survive a restart of ``redstep serve`` and end when the secrets change;
with ``--no-auth`` (loopback only) it is random per process. A form's CSRF token is the HMAC
of the session id, so a page of one session cannot be replayed in another, and a site that
cannot read the page cannot forge it.

The login form comes before any session, so it has a token of its own (login CSRF: another
site must not log a visitor in as the other site's user): the login page sets a short-lived
signed cookie ``<nonce>.<expiry>.<signature>`` and puts the HMAC of its nonce in a hidden
field; a login POST must bring both, matching (double submit). Another site can neither read
the field nor, the cookie being SameSite=Strict, send the cookie along.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

COOKIE = "redstep_session"
SESSION_SECONDS = 12 * 3600
OPEN_USER = "local (--no-auth)"
LOGIN_COOKIE = "redstep_login"
LOGIN_SECONDS = 3600
"""How long a login form stays usable; a page left open longer is reloaded with a fresh one."""


@dataclass(frozen=True)
class Session:
    user: str
    session_id: str
    expires: float


class Sessions:
    """Issues and checks session cookies and CSRF tokens.

    Args:
        credentials: access key id -> secret; None serves the dashboard open (``--no-auth``).
        clock: the time source (seconds), for tests of expiry.
    """

    def __init__(self, credentials: dict[str, str] | None, clock: Callable[[], float] = time.time) -> None:
        self.credentials = credentials
        self.clock = clock
        if credentials:
            material = "\n".join(f"{key}:{secret}" for key, secret in sorted(credentials.items()))
            self._key = hashlib.sha256(b"redstep dashboard sessions\n" + material.encode()).digest()
        else:
            self._key = os.urandom(32)

    @property
    def open(self) -> bool:
        return self.credentials is None

    def log_in(self, access_key_id: str, secret: str) -> Session | None:
        """A new session when the pair is one of the API's, else None (compared in constant time)."""
        expected = (self.credentials or {}).get(access_key_id)
        if expected is None or not hmac.compare_digest(expected.encode(), secret.encode()):
            return None
        return self.new_session(access_key_id)

    def new_session(self, user: str) -> Session:
        return Session(user, secrets.token_urlsafe(18), self.clock() + SESSION_SECONDS)

    def cookie_value(self, session: Session) -> str:
        payload = json.dumps({"u": session.user, "s": session.session_id, "e": session.expires})
        encoded = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        return f"{encoded}.{self._sign(encoded)}"

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie carries, or None when it is missing, forged, malformed or expired."""
        if not cookie or "." not in cookie:
            return None
        encoded, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(signature, self._sign(encoded)):
            return None
        try:
            payload = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
            session = Session(str(payload["u"]), str(payload["s"]), float(payload["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        if session.expires <= self.clock():
            return None
        if not self.open and session.user not in (self.credentials or {}):
            return None  # its key was removed from the configuration since
        return session

    def csrf_token(self, session: Session) -> str:
        return self._sign(f"csrf:{session.session_id}")

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf_token(session))

    def login_cookie(self, current: str | None) -> str:
        """The login form's pre-session cookie: ``current`` while it has over half its life left
        (so two login tabs share one), else a new one."""
        expires = self._login_expiry(current)
        if current and expires is not None and expires - self.clock() > LOGIN_SECONDS / 2:
            return current
        payload = f"{secrets.token_urlsafe(18)}.{int(self.clock() + LOGIN_SECONDS)}"
        return f"{payload}.{self._sign(f'login:{payload}')}"

    def login_csrf_token(self, cookie: str) -> str:
        """The hidden field that goes with the login cookie ``cookie``."""
        nonce = cookie.partition(".")[0]
        return self._sign(f"login-csrf:{nonce}")

    def login_csrf_ok(self, cookie: str | None, token: str | None) -> bool:
        """Whether a login POST brings a valid, unexpired login cookie and its own field."""
        if not cookie or not token or self._login_expiry(cookie) is None:
            return False
        return hmac.compare_digest(str(token), self.login_csrf_token(cookie))

    def _login_expiry(self, cookie: str | None) -> float | None:
        """When a login cookie expires; None when it is missing, forged, malformed or expired."""
        if not cookie or cookie.count(".") != 2:
            return None
        payload, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(signature, self._sign(f"login:{payload}")):
            return None
        expiry = payload.partition(".")[2]
        if not expiry.isdigit() or int(expiry) <= self.clock():
            return None
        return float(expiry)

    def _sign(self, text: str) -> str:
        digest = hmac.new(self._key, text.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")
