"""The orchestrator's own Lua scripts, in ``orchestrator/runtime/lua/``.

They load the one way every script does (:mod:`orchestrator.protocol.scripts`, which also
holds the scripts a worker runs); this module adds only what the orchestrator's loop needs.
"""

from __future__ import annotations

from redis import Redis
from redis.client import Pipeline
from redis.commands.core import Script

from orchestrator.protocol import scripts

LUA_PACKAGE = "orchestrator.runtime"


def lua_script(client: Redis | Pipeline, name: str) -> Script:
    """The orchestrator's script ``runtime/lua/<name>.lua`` registered on ``client``."""
    return scripts.lua_script(client, name, LUA_PACKAGE)


def load_for_pipelines(script: Script) -> None:
    """Make sure Redis knows ``script`` before a pipeline sends it as a bare ``EVALSHA script.sha``.

    A Script called on a pipeline asks SCRIPT EXISTS before every execute: a second round trip
    for a loop that spends one per iteration. Such a loop queues the script's EVALSHA itself,
    loads it here once, and again whenever a pipeline comes back with NOSCRIPT.
    """
    script.registered_client.script_load(script.script)
