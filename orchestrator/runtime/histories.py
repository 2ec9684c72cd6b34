"""An execution's history, read in either of the two forms it is stored in.

While an execution runs, ``{p}:history:{<name>}`` is a list of JSON events, one per entry,
which every commit appends to. Once it has finished, an orchestrator compacts it
(runtime.history_compaction): the same key then holds one string, a short header and the
events as one zlib-compressed JSON array::

    b"\\x00redstep-history 1 <count>\\n" + zlib(b"[" + b",".join(events) + b"]")

A history of 19 events (7.5 KB of JSON, 8.4 KB of Redis memory) becomes 1.4 KB. The readers
here take either form, so callers never see which it is; a redrive turns the string back into
a list before it appends (:func:`expand`). A string at the key that is not such a header is something else's
write: reading it raises :class:`MalformedHistory`, which names the key and the fix.
"""

from __future__ import annotations

import zlib
from typing import Any

import redis

from orchestrator.protocol.decoding import loads
from orchestrator.protocol.json_text import dumps
from orchestrator.runtime.scripts import lua_script

MAGIC = b"\x00redstep-history 1 "
# zlib's fastest level: the history's repeated keys compress about as well at 1 as at 6.
COMPRESSION_LEVEL = 1
SLICE = 1000  # events per RPUSH when a history is expanded (Lua cannot unpack ~8,000 values)


class MalformedHistory(ValueError):
    """A history key holds a string that is not a compacted history."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(
            f"{key} holds a string that is not a compacted history ({why}): restore the history as a "
            "list of events, or delete the execution"
        )
        self.key = key


def pack(events: list[bytes]) -> bytes:
    """The compacted form of a history whose events, as stored in the list, are ``events``."""
    body = zlib.compress(b"[" + b",".join(events) + b"]", COMPRESSION_LEVEL)
    return MAGIC + str(len(events)).encode() + b"\n" + body


def compacted_length(key: str, blob: bytes) -> int:
    """How many events the compacted history ``blob`` (stored at ``key``) holds, from its header."""
    return _header(key, blob)[0]


def unpack(key: str, blob: bytes) -> list[dict[str, Any]]:
    """The events of the compacted history ``blob`` (stored at ``key``), decoded."""
    count, start = _header(key, blob)
    try:
        events = loads(zlib.decompress(blob[start:]))
    except (zlib.error, ValueError) as exc:
        raise MalformedHistory(key, f"its events cannot be read: {exc}") from None
    if not isinstance(events, list) or len(events) != count:
        raise MalformedHistory(key, f"its header says {count} event(s), its body holds something else")
    return events


def _header(key: str, blob: bytes) -> tuple[int, int]:
    """The event count a compacted history's header gives, and where its body starts."""
    end = blob.find(b"\n", 0, len(MAGIC) + 20)
    if not blob.startswith(MAGIC) or end < 0 or not blob[len(MAGIC) : end].isdigit():
        raise MalformedHistory(key, f"it starts {blob[:24]!r}")
    return int(blob[len(MAGIC) : end]), end + 1


def lrange_slice(items: list[Any], start: int, stop: int) -> list[Any]:
    """``items[start..stop]`` as LRANGE reads a list: both ends included, negative from the end."""
    length = len(items)
    if start < 0:
        start = max(length + start, 0)
    if stop < 0:
        stop += length
    if start > stop or start >= length:
        return []
    return items[start : min(stop, length - 1) + 1]


def is_wrong_type(exc: redis.ResponseError) -> bool:
    return str(exc).startswith("WRONGTYPE")


def history_length(client: redis.Redis, key: str) -> int:
    """How many events the history at ``key`` holds (0 when there is none)."""
    try:
        return int(client.llen(key))
    except redis.ResponseError as exc:
        if not is_wrong_type(exc):
            raise
    blob = client.get(key)
    return 0 if blob is None else compacted_length(key, blob)


def history_range(client: redis.Redis, key: str, start: int, stop: int) -> list[dict[str, Any]]:
    """The events at positions ``start`` to ``stop`` (inclusive, from 0; negative from the end)."""
    try:
        return [loads(event) for event in client.lrange(key, start, stop)]
    except redis.ResponseError as exc:
        if not is_wrong_type(exc):
            raise
    blob = client.get(key)
    return [] if blob is None else lrange_slice(unpack(key, blob), start, stop)


def expand(client: redis.Redis, key: str) -> bool:
    """Turn the compacted history at ``key`` back into a list of events; whether it was compacted.

    A redrive appends to the history, which only a list takes. The script replaces exactly the
    string read here, so two expansions at once, or one racing a compaction, leave one list.
    """
    try:
        blob = client.get(key)
    except redis.ResponseError as exc:
        if is_wrong_type(exc):
            return False  # a list already (or another type, which the commit then refuses)
        raise
    if blob is None:
        return False
    texts = [dumps(event).encode() for event in unpack(key, blob)]
    return bool(lua_script(client, "expand_history")(keys=[key], args=[blob, SLICE, *texts]))
