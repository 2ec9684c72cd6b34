"""Each state machine's own execution index, so listing a machine's executions reads only its own.

The global index (``{p}:executions``, ``{p}:status:<STATUS>``) holds every execution; listing
the executions of a machine with few among many meant reading the whole index and loading
every execution in it. So the commit that starts an execution, or moves it between statuses,
also writes (see :func:`writes`, called from ``Commit.index_status``):

    ``{p}:machine-executions:<machine>``        zset: its executions, scored by start time
    ``{p}:machine-status:<machine>:<STATUS>``   zset per status: the same, by status

Executions stored before these indexes existed are taken in once by :func:`rebuild`, which
reads the global index from end to end and adds each execution to its machine's indexes;
``{p}:machine-index-built`` then records that
the per-machine indexes are complete. Until then readers answer from the global index, as
before, and the first reader to find the mark missing starts the rebuild in a thread (one at
a time: ``{p}:machine-index-building`` is a lock with a lifetime). An operator can run it
ahead, after an upgrade: ``python -m orchestrator.runtime.execution_index``.

An entry can be stale (an execution swept by the retention sweep, or a status the rebuild
read just before a commit moved it on): readers load each execution anyway and check its
machine and status, as they did with the global index.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis

from orchestrator.protocol.decoding import loads
from orchestrator.runtime.keys import Keys

log = logging.getLogger(__name__)

REBUILD_BATCH = 1000
BUILDING_SECONDS = 600
"""How long a rebuild holds the lock: one that dies with it held blocks others no longer."""


def all_key(keys: Keys, machine: str) -> str:
    return f"{keys.prefix}:machine-executions:{machine}"


def status_key(keys: Keys, machine: str, status: str) -> str:
    return f"{keys.prefix}:machine-status:{machine}:{status}"


def built_key(keys: Keys) -> str:
    return f"{keys.prefix}:machine-index-built"


def building_key(keys: Keys) -> str:
    return f"{keys.prefix}:machine-index-building"


def writes(keys: Keys, execution: dict[str, Any], previous: str | None) -> list[list[str]]:
    """The index writes (``["zadd", key, score, member]`` / ``["zrem", key, member]``) of a commit
    that moves ``execution`` from status ``previous`` (None: it starts) to its current one."""
    machine, name, status = execution["stateMachine"], execution["name"], execution["status"]
    if previous == status:
        return []
    started = str(execution["startDate"])  # str() of a float is its repr: every digit kept
    ops = [["zadd", status_key(keys, machine, status), started, name]]
    if previous is None:
        ops.append(["zadd", all_key(keys, machine), started, name])
    else:
        ops.append(["zrem", status_key(keys, machine, previous), name])
    return ops


def is_built(redis_client: redis.Redis, keys: Keys, background: bool = True) -> bool:
    """Whether every execution is in its machine's indexes; starts the rebuild when none has yet.

    False while the rebuild runs (here, in a thread of its own unless ``background`` is False,
    or in another reader), or when it failed: then read the global index, as before.
    """
    if redis_client.exists(built_key(keys)):
        return True
    try:
        if not redis_client.set(building_key(keys), "1", nx=True, ex=BUILDING_SECONDS):
            return False  # another reader rebuilds them
    except redis.RedisError:
        log.exception("the per-machine execution indexes could not be rebuilt; the global index serves")
        return False
    if not background:
        return _rebuild_and_release(redis_client, keys)
    # A request does not wait for it: 100,000 executions take seconds.
    threading.Thread(
        target=_rebuild_and_release, args=(redis_client, keys), name="execution-index-rebuild", daemon=True
    ).start()
    return False


def _rebuild_and_release(redis_client: redis.Redis, keys: Keys) -> bool:
    try:
        rebuild(redis_client, keys)
    except redis.RedisError:
        log.exception("the per-machine execution indexes could not be rebuilt; the global index serves")
        return False
    finally:
        redis_client.delete(building_key(keys))
    return True


def rebuild(redis_client: redis.Redis, keys: Keys) -> int:
    """Add every execution of the global index to its machine's indexes; return how many were read.

    Safe while orchestrators run: it only adds. A commit writes the same entries itself, and an
    entry for a status a commit moved the execution out of meanwhile is stale, which readers
    tolerate (removing entries here could remove the one that commit just wrote).
    """
    # By start time, not by rank: executions swept meanwhile would shift ranks and skip others.
    read, low, skip = 0, "-inf", 0
    while True:
        rows = redis_client.zrangebyscore(
            keys.executions, low, "+inf", start=skip, num=REBUILD_BATCH, withscores=True
        )
        if not rows:
            break
        names = [member.decode() for member, _ in rows]
        last = rows[-1][1]
        tied = sum(1 for _, score in rows if score == last)
        skip = tied + (skip if low == repr(last) else 0)
        low = repr(last)
        pipe = redis_client.pipeline(transaction=False)
        for name in names:
            pipe.hget(keys.execution(name), "execution")
        blobs = pipe.execute()
        pipe = redis_client.pipeline(transaction=False)
        for name, blob in zip(names, blobs, strict=True):
            execution = _decoded(blob)
            if execution is None:
                continue
            machine, started = execution["stateMachine"], float(execution["startDate"])
            pipe.zadd(all_key(keys, machine), {name: started})
            pipe.zadd(status_key(keys, machine, execution["status"]), {name: started})
        pipe.execute()
        read += len(names)
    redis_client.set(built_key(keys), "1")
    log.info("indexed %d execution(s) by state machine", read)
    return read


def newest(
    redis_client: redis.Redis,
    keys: Keys,
    machine: str,
    status: str | None,
    before: tuple[float, str] | None,
    count: int,
) -> list[tuple[str, float]]:
    """Up to ``count`` (name, start time) entries of ``machine``'s index, newest first.

    With ``before``, only the entries after it in that order (equal start times in reverse
    name order, as ZREVRANGEBYSCORE gives them), the same cursor the global index takes.
    """
    index = status_key(keys, machine, status) if status else all_key(keys, machine)
    if before is None:
        rows = redis_client.zrevrangebyscore(index, "+inf", "-inf", start=0, num=count, withscores=True)
        return [(member.decode(), score) for member, score in rows]
    score, name = before
    ties = redis_client.zrangebyscore(index, repr(score), repr(score), withscores=True)
    entries = sorted(((m.decode(), s) for m, s in ties if m.decode() < name), reverse=True)[:count]
    if len(entries) < count:
        rows = redis_client.zrevrangebyscore(
            index, f"({score!r}", "-inf", start=0, num=count - len(entries), withscores=True
        )
        entries += [(member.decode(), s) for member, s in rows]
    return entries


def _decoded(blob: bytes | None) -> dict[str, Any] | None:
    if blob is None:
        return None
    try:
        execution = loads(blob)
    except ValueError:
        return None  # the doctor reports a broken blob; it has no machine to be indexed under
    if not isinstance(execution, dict) or not {"stateMachine", "startDate", "status"} <= execution.keys():
        return None
    return execution


def main() -> None:
    """Rebuild the per-machine indexes of the installation the environment configures."""
    from orchestrator.settings import Settings

    settings = Settings()
    with redis.Redis.from_url(settings.redis_url) as redis_client:
        print(f"indexed {rebuild(redis_client, Keys(settings.prefix))} execution(s) by state machine")


if __name__ == "__main__":
    main()
