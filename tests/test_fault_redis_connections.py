"""Dropped connections (CLIENT KILL) and a slow Redis (DEBUG SLEEP, CLIENT PAUSE) mid-run.

Given the stack of real processes on a private redis-server, when every client connection
is killed several times while records flow, or Redis stops answering for a second or two,
then every record still ends in exactly one execution, run exactly once, and the
orchestrator stays up. Workers run under a supervisor that restarts one that exits, as
compose's restart policy would; test_fault_redis_restart.py shows that none needs it.
"""

from __future__ import annotations

from collections.abc import Callable

import redis

from tests.chaos import wait_until
from tests.test_fault_crash_points import assert_each_execution_ended_exactly_once
from tests.test_fault_redis_restart import (
    Stack,
    inject_mid_run,
    start_pipeline,
    wait_for_the_whole_run,
)
from tests.test_fault_redis_restart import stack as stack  # the fixture

KILLS = 4


def assert_run_completed_exactly_once(stack: Stack) -> None:
    wait_for_the_whole_run(stack)
    client = stack.client()
    assert_each_execution_ended_exactly_once(client, stack.settings(), stack.produced)
    client.close()
    assert stack.processes["orchestrator"].poll() is None, "the orchestrator gave up"


def kill_connections_mid_run(stack: Stack, kill: Callable[[redis.Redis], int]) -> int:
    """Call ``kill`` until KILLS calls landed mid-run, each at the fault point of a new wave;
    how many connections it dropped in all."""
    admin, killed = stack.client(), 0

    def kill_and_count() -> None:
        nonlocal killed
        killed += kill(admin)

    try:
        inject_mid_run(stack, kill_and_count, times=KILLS)
    finally:
        admin.close()
    return killed


def kill_orchestrator_connections(admin: redis.Redis) -> int:
    """Kill the orchestrator's connections, once it has reconnected since the last kill."""

    def connections() -> list[str]:
        return [c["id"] for c in admin.client_list() if c["name"].startswith("redstep-orchestrator-")]

    wait_until(lambda: bool(connections()), 30, "the orchestrator to reconnect", interval=0.01)
    return sum(int(admin.client_kill_filter(_id=client_id)) for client_id in connections())


def test_the_orchestrators_connections_killed_again_and_again_mid_run_lose_nothing_and_repeat_nothing(
    stack: Stack,
) -> None:
    start_pipeline(stack)

    killed = kill_connections_mid_run(stack, kill_orchestrator_connections)

    assert killed >= KILLS
    assert_run_completed_exactly_once(stack)


def test_every_connection_killed_again_and_again_mid_run_loses_nothing_and_repeats_nothing(
    stack: Stack,
) -> None:
    start_pipeline(stack)

    kill_connections_mid_run(stack, lambda admin: int(admin.client_kill_filter(_type="normal", skipme=True)))

    assert_run_completed_exactly_once(stack)


def test_a_redis_that_stops_answering_for_seconds_is_ridden_out(stack: Stack) -> None:
    start_pipeline(stack)

    def stall() -> None:
        # DEBUG SLEEP blocks the whole server; CLIENT PAUSE then holds every other client's commands.
        staller = stack.client()
        staller.execute_command("DEBUG", "SLEEP", "1")
        staller.client_pause(2000)
        staller.close()

    inject_mid_run(stack, stall)

    assert_run_completed_exactly_once(stack)
