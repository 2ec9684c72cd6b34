"""Redis losing its data while an orchestrator starts leaves no shipped machine missing.

An orchestrator sets up two things when it starts: its consumer groups and the shipped machines'
definitions. Given Redis emptied (FLUSHALL, a restart without data) between or after the two,
when a record arrives, then it starts an execution of DragonPipeline, not one that fails as
"State Machine Does Not Exist" until the orchestrator is restarted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import redis

from orchestrator.runtime import loop
from orchestrator.runtime.client import Client
from orchestrator.runtime.loop import Orchestrator, start_when_reachable
from orchestrator.runtime.sources import send_messages
from orchestrator.settings import Settings
from tests.runtime_fixtures import dragon, queued_tasks


def flushing_after(redis_client: redis.Redis, step: Callable[..., Any]) -> Callable[..., Any]:
    """``step``, followed by Redis losing all its data."""

    def step_then_flush(*args: Any, **kwargs: Any) -> Any:
        result = step(*args, **kwargs)
        redis_client.flushall()
        return result

    return step_then_flush


@pytest.mark.parametrize("lost_after", ["consumer groups", "shipped machines"])
def test_data_lost_while_an_orchestrator_starts_still_runs_dragon_pipeline(
    redis_client: redis.Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch, lost_after: str
) -> None:
    if lost_after == "consumer groups":
        monkeypatch.setattr(Orchestrator, "__init__", flushing_after(redis_client, Orchestrator.__init__))
    else:
        steps = loop.register_shipped_machines
        monkeypatch.setattr(loop, "register_shipped_machines", flushing_after(redis_client, steps))
    orchestrator = start_when_reachable(redis_client, settings, "o1", threading.Event())
    assert orchestrator is not None

    send_messages(redis_client, settings, settings.source_queue, [dragon("Ember")])
    for _ in range(3):  # the first read may find the groups gone and create them again
        orchestrator.run_once()

    [execution] = Client(redis_client, settings).list_executions()
    assert (execution["stateMachine"], execution["status"]) == ("DragonPipeline", "RUNNING"), execution
    assert [task["function"] for task in queued_tasks(redis_client, settings)] == ["ValidateDragon"]
