"""Where Redis is: ``REDIS_URL``, or a URL made from its parts when only those are given.

docker-compose 1.29 cannot nest variable defaults (``${REDIS_URL:-redis://:${REDIS_PASSWORD}@...}``),
so the compose file hands the parts over as ``REDSTEP_REDIS_HOST``, ``REDSTEP_REDIS_PORT``,
``REDSTEP_REDIS_USER`` and ``REDSTEP_REDIS_PASSWORD`` and leaves ``REDIS_URL`` empty unless the
user sets it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import quote


def url_from_parts(env: Mapping[str, str]) -> str | None:
    """The Redis URL that ``REDSTEP_REDIS_HOST`` / ``_PORT`` / ``_USER`` / ``_PASSWORD`` / ``_DB`` describe.

    User and password are percent-encoded, so any character may appear in them.
    """
    host = env.get("REDSTEP_REDIS_HOST")
    if not host:
        return None
    port = env.get("REDSTEP_REDIS_PORT") or "6379"
    database = env.get("REDSTEP_REDIS_DB") or "0"
    password = env.get("REDSTEP_REDIS_PASSWORD")
    user = quote(env.get("REDSTEP_REDIS_USER") or "", safe="")
    auth = f"{user}:{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{host}:{port}/{database}"


def configured_url(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str | None:
    """The Redis URL the user asked for: ``explicit`` (``--redis-url``), ``REDIS_URL``, else the parts.

    Returns:
        ``None`` when nothing names a Redis; an empty ``REDIS_URL`` counts as unset.
    """
    env = os.environ if env is None else env
    return explicit or env.get("REDIS_URL") or url_from_parts(env)
