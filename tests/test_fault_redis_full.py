"""A Redis that fills up mid-run and refuses writes is waited out: nothing exits, nothing is lost.

Given a stack of real processes (an orchestrator, two workers) on a private redis-server, when
the server's ``maxmemory`` is set below what it holds while records flow, Redis refuses every
write (OOM under ``noeviction``, as compose runs it) while it still answers reads. Every process
stays up and says so once, no record is read and left to count deliveries toward the dead-letter
queue, and once Redis is given room every execution ends exactly once, as if nothing happened.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

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


def full_for_a_while(stack: Stack) -> None:
    """Make Redis refuse every write for REFUSING_SECONDS, checking that every process waits it out."""
    client = stack.client()
    orchestrator_lines = stack.log("orchestrator").count(REFUSED)
    client.config_set("maxmemory", 1)  # below what any server holds: full at once
    try:
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            client.set("a-write", "refused")
        noticed = "the orchestrator to notice the refusals"
        wait_until(lambda: stack.log("orchestrator").count(REFUSED) > orchestrator_lines, 30, noticed)
        time.sleep(REFUSING_SECONDS)
        exited = {name: p.returncode for name, p in stack.processes.items() if p.poll() is not None}
        assert not exited, f"processes exited while Redis refused writes: {exited}"
    finally:
        client.config_set("maxmemory", 0)
        client.close()


def test_a_redis_that_refuses_writes_mid_run_is_waited_out_and_loses_nothing(stack: Stack) -> None:
    start_pipeline(stack)

    episodes = inject_mid_run(stack, lambda: full_for_a_while(stack))
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
