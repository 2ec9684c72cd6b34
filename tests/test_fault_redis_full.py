"""A Redis that refuses writes mid-run is waited out: nothing exits, nothing is lost.

Given a stack of real processes (an orchestrator, two workers) on a private redis-server, when
Redis refuses every write while records flow and still answers reads, in either of two ways:
its ``maxmemory`` set below what it holds (OOM under ``noeviction``, as compose runs it), or a
snapshot it cannot write to its disk (MISCONF under ``stop-writes-on-bgsave-error``, as a full
disk does), then every process stays up and says so once, no record is read and left to count
deliveries toward the dead-letter queue, and once Redis takes writes again every execution ends
exactly once, as if nothing happened.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
import redis

from orchestrator.protocol.reconnect import PersistenceError
from tests.chaos import wait_until
from tests.test_fault_crash_points import assert_each_execution_ended_exactly_once
from tests.test_fault_redis_restart import (
    Stack,
    inject_mid_run,
    running_stack,
    start_pipeline,
    wait_for_the_whole_run,
)

# Longer than a task's lease (3 s here), so leases lapse while nothing can fire them, and than
# several of every process's back-offs (at most 0.5 s here).
REFUSING_SECONDS = 6.0
REFUSED = "Redis refuses writes"


@pytest.fixture
def stack(tmp_path: Path, subprocess_env: dict[str, str]) -> Iterator[Stack]:
    with running_stack(tmp_path, subprocess_env) as running:
        yield running


@contextmanager
def out_of_memory(client: redis.Redis) -> Iterator[None]:
    """Redis full: every write refused with OOM."""
    client.config_set("maxmemory", 1)  # below what any server holds: full at once
    try:
        yield
    finally:
        client.config_set("maxmemory", 0)


@contextmanager
def unable_to_persist(client: redis.Redis) -> Iterator[None]:
    """A snapshot Redis cannot write: every write refused with MISCONF, as on a full disk.

    Redis writes its snapshot into its working directory; one deleted under it takes no file.
    """
    data_dir = client.config_get("dir")["dir"]
    client.config_set("save", "3600 1")  # stop-writes-on-bgsave-error holds only with a save point
    gone = tempfile.mkdtemp()
    client.config_set("dir", gone)
    Path(gone).rmdir()
    try:
        client.bgsave()
        wait_until(lambda: last_save(client) == "err", 30, "the snapshot to fail")
        yield
    finally:
        client.config_set("dir", data_dir)
        client.bgsave()
        wait_until(lambda: last_save(client) == "ok", 30, "a snapshot to succeed")
        client.config_set("save", "")


def last_save(client: redis.Redis) -> str:
    """How Redis's last snapshot went: "ok" or "err"."""
    return str(client.info("persistence")["rdb_last_bgsave_status"])


REFUSALS: dict[str, tuple[Callable[[redis.Redis], AbstractContextManager[None]], type[Exception]]] = {
    "out of memory": (out_of_memory, redis.exceptions.OutOfMemoryError),
    "unable to persist": (unable_to_persist, PersistenceError),
}


def refusing_for_a_while(stack: Stack, refusal: str) -> None:
    """Make Redis refuse every write for REFUSING_SECONDS, checking that every process waits it out."""
    refusing, error = REFUSALS[refusal]
    client = stack.client()
    orchestrator_lines = stack.log("orchestrator").count(REFUSED)
    try:
        with refusing(client):
            with pytest.raises(error):
                client.set("a-write", "refused")
            noticed = "the orchestrator to notice the refusals"
            wait_until(lambda: stack.log("orchestrator").count(REFUSED) > orchestrator_lines, 30, noticed)
            time.sleep(REFUSING_SECONDS)
            exited = {name: p.returncode for name, p in stack.processes.items() if p.poll() is not None}
            assert not exited, f"processes exited while Redis refused writes: {exited}"
    finally:
        client.close()


@pytest.mark.parametrize("refusal", list(REFUSALS))
def test_a_redis_that_refuses_writes_mid_run_is_waited_out_and_loses_nothing(
    stack: Stack, refusal: str
) -> None:
    start_pipeline(stack)

    episodes = inject_mid_run(stack, lambda: refusing_for_a_while(stack, refusal))
    wait_for_the_whole_run(stack)

    client = stack.client()
    assert_each_execution_ended_exactly_once(client, stack.settings(), stack.produced)
    client.close()
    assert stack.revived == 0, "\n".join(stack.log(n) for n in stack.processes if n.startswith("worker"))
    orchestrator = stack.log("orchestrator")
    # One line when the refusals began and one when they ended, per episode: no traceback per attempt.
    assert orchestrator.count(REFUSED) == episodes, orchestrator
    assert orchestrator.count("Redis took writes again") == episodes, orchestrator
    assert "iteration failed" not in orchestrator, orchestrator
