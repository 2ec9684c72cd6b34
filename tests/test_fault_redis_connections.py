"""Dropped connections (CLIENT KILL) and a slow Redis (DEBUG SLEEP, CLIENT PAUSE) mid-run.

Given the stack of real processes on a private redis-server, when every client connection
is killed several times while records flow, or Redis stops answering for a second or two,
then every record still ends in exactly one execution, run exactly once, and the
orchestrator stays up. Workers run under a supervisor that restarts one that exits, as
compose's restart policy would; test_fault_redis_restart.py shows that none needs it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import redis

from tests.chaos import wait_until
from tests.test_fault_crash_points import assert_each_execution_ended_exactly_once
from tests.test_fault_redis_restart import RECORDS, Stack, start_pipeline
from tests.test_fault_redis_restart import stack as stack  # the fixture


def assert_run_completed_exactly_once(stack: Stack) -> None:
    wait_until(lambda: stack.supervised_finished() == RECORDS, 120, f"all {RECORDS} executions to finish")
    client = stack.client()
    assert_each_execution_ended_exactly_once(client, stack.settings())
    client.close()
    assert stack.processes["orchestrator"].poll() is None, "the orchestrator gave up"


def kill_connections_mid_run(stack: Stack, kill: Callable[[redis.Redis], int]) -> int:
    """Call ``kill`` four times as the run goes on; how many connections it dropped in all."""
    admin, killed = stack.client(), 0
    for target in (2, 6, 10, 14):
        reached = f"{target} executions to finish"
        wait_until(lambda t=target: stack.finished() >= t, 60, reached, interval=0.01)
        killed += kill(admin)
    admin.close()
    return killed


def kill_orchestrator_connections(admin: redis.Redis) -> int:
    """Kill the orchestrator's connections, once it has reconnected since the last kill."""

    def connections() -> list[str]:
        return [c["id"] for c in admin.client_list() if c["name"].startswith("redstep-orchestrator-")]

    wait_until(lambda: bool(connections()), 30, "the orchestrator to reconnect", interval=0.01)
    return sum(int(admin.client_kill_filter(_id=client_id)) for client_id in connections())


def test_the_orchestrators_connections_killed_again_and_again_mid_run_lose_nothing_and_repeat_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    start_pipeline(stack, tmp_path)

    killed = kill_connections_mid_run(stack, kill_orchestrator_connections)

    assert killed >= 4
    assert_run_completed_exactly_once(stack)


def test_every_connection_killed_again_and_again_mid_run_loses_nothing_and_repeats_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    start_pipeline(stack, tmp_path)

    kill_connections_mid_run(stack, lambda admin: int(admin.client_kill_filter(_type="normal", skipme=True)))

    assert_run_completed_exactly_once(stack)


def test_a_redis_that_stops_answering_for_seconds_is_ridden_out(stack: Stack, tmp_path: Path) -> None:
    start_pipeline(stack, tmp_path)
    admin = stack.client()

    def stall() -> None:
        # DEBUG SLEEP blocks the whole server; CLIENT PAUSE holds every other client's commands.
        sleeper = redis.Redis.from_url(stack.server.url)
        sleeper.execute_command("DEBUG", "SLEEP", "1")
        sleeper.client_pause(2000)
        sleeper.close()

    wait_until(lambda: stack.finished() >= 2, 60, "the first executions to finish", interval=0.01)
    finished_at_stall = int(stack.finished())
    staller = threading.Thread(target=stall)
    staller.start()
    staller.join()
    admin.close()

    assert finished_at_stall < RECORDS, "the stall came after the run, not in the middle of it"
    assert_run_completed_exactly_once(stack)
