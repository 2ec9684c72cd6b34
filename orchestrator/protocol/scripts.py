"""The one way a Lua script reaches Redis: ``lua/<name>.lua``, registered as a redis-py Script.

The scripts a worker runs live in this package's ``lua/`` folder; the orchestrator's own live
in ``orchestrator/runtime/lua/`` and are loaded the same way (runtime.scripts). Both folders
ship as package data, and each script opens with a header that names its KEYS and ARGV and
what it returns. A Script sends EVALSHA and, when Redis does not know the script (a restart,
SCRIPT FLUSH, another server), loads it and tries again.

Scripts cannot call one another, so a piece two scripts need is a file of its own that each
names on a line ``--#include <name>``, replaced by that file's text (from this package's
``lua/``) when the script is read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from importlib import resources

from hiredis import pack_command
from redis import Redis
from redis.client import Pipeline
from redis.commands.core import Script
from redis.connection import AbstractConnection
from redis.typing import EncodableT

LUA_PACKAGE = "orchestrator.protocol"
LUA_FOLDER = "lua"
INCLUDE = re.compile(r"^--#include (\w+)$", re.MULTILINE)


@cache
def lua_source(name: str, package: str = LUA_PACKAGE) -> str:
    """The text of ``<package>/lua/<name>.lua``, includes expanded; no such file raises FileNotFoundError."""
    text = resources.files(package).joinpath(LUA_FOLDER, f"{name}.lua").read_text(encoding="utf-8")
    return INCLUDE.sub(lambda include: lua_source(include.group(1)), text)


def lua_script(client: Redis | Pipeline, name: str, package: str = LUA_PACKAGE) -> Script:
    """The Lua script ``<package>/lua/<name>.lua`` registered on ``client`` (EVALSHA, EVAL on a miss)."""
    return client.register_script(lua_source(name, package))


def send_evalsha(
    connection: AbstractConnection, sha: str, keys: Sequence[EncodableT], args: Sequence[EncodableT]
) -> None:
    """Send EVALSHA on ``connection`` without reading the reply, packed by hiredis in one call.

    redis-py packs a command argument by argument through its encoder: 10 us for a one-start
    commit's 21 arguments in a tight loop, against 1.3 us for hiredis's packer, which encodes
    text as UTF-8 as redis-py's default encoder does.
    """
    # A list of chunks: send_packed_command would walk a lone bytes object byte by byte.
    connection.send_packed_command([pack_command(("EVALSHA", sha, len(keys), *keys, *args))])
