"""The one way a Lua script reaches Redis: ``lua/<name>.lua``, registered as a redis-py Script.

Every script lives in this package's ``lua/`` folder, shipped as package data, with a header
that names its KEYS and ARGV and what it returns. A Script sends EVALSHA and, when Redis does
not know the script (a restart, SCRIPT FLUSH, another server), loads it and tries again.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from redis import Redis
from redis.client import Pipeline
from redis.commands.core import Script

LUA_PACKAGE = "orchestrator.runtime"
LUA_FOLDER = "lua"


@cache
def lua_source(name: str) -> str:
    """The text of ``lua/<name>.lua``; a name with no such file raises FileNotFoundError."""
    return resources.files(LUA_PACKAGE).joinpath(LUA_FOLDER, f"{name}.lua").read_text(encoding="utf-8")


def lua_script(client: Redis | Pipeline, name: str) -> Script:
    """The Lua script ``lua/<name>.lua`` registered on ``client`` (EVALSHA, EVAL on a miss)."""
    return client.register_script(lua_source(name))


def load_for_pipelines(script: Script) -> None:
    """Make sure Redis knows ``script`` before a pipeline sends it as a bare ``EVALSHA script.sha``.

    A Script called on a pipeline asks SCRIPT EXISTS before every execute: a second round trip
    for a loop that spends one per iteration. Such a loop queues the script's EVALSHA itself,
    loads it here once, and again whenever a pipeline comes back with NOSCRIPT.
    """
    script.registered_client.script_load(script.script)
