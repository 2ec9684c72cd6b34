"""RQ's writes recorded on an unsent pipeline land as RQ itself would have sent them.

The worker's scripts apply the recorded commands from one JSON argument (worker.bookkeeping,
lua/recorded_commands.lua); every word must reach Redis as the text redis-py would have sent:
a float's repr, an int's digits, a str enum's value, bytes' text.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import redis
from rq.executions import Execution
from rq.worker import WorkerStatus

from orchestrator.protocol.scripts import lua_script
from worker.bookkeeping import NO_COMMANDS, recorded, recorder


def apply(client: redis.Redis, words: list[object]) -> None:
    """Apply recorded commands through start_tasks.lua with no leases, as a worker's START does."""
    start = lua_script(client, "start_tasks")
    start(keys=["t:claimed:w", "t:leases", "rq:queue:t-tasks"], args=["job-1", "30.0", *words])


def written(client: redis.Redis, execution_key: str) -> tuple[object, ...]:
    return client.hgetall(execution_key), client.hgetall("t:words"), client.ttl(execution_key)


def test_recorded_words_arrive_as_redis_py_would_have_sent_them(redis_client: redis.Redis) -> None:
    execution = Execution("e" * 32, "job-1", redis_client, worker_name="w")
    execution.created_at = execution.last_heartbeat = datetime(2026, 12, 6, 16, 9, 40, 10543, tzinfo=UTC)
    values = {"float": 1796573380.010543, "small": 1e-07, "int": 960, "enum": WorkerStatus.BUSY}
    values["bytes"] = "é".encode()

    pipeline = recorder(redis_client)
    execution.save(ttl=960, pipeline=pipeline)
    pipeline.hset("t:words", mapping=values)  # type: ignore[arg-type]
    apply(redis_client, recorded(pipeline))
    ours = (
        redis_client.hgetall(execution.key),
        redis_client.hgetall("t:words"),
        redis_client.ttl(execution.key),
    )

    redis_client.delete(execution.key, "t:words")
    with redis_client.pipeline() as sent:
        execution.save(ttl=960, pipeline=sent)
        sent.hset("t:words", mapping=values)  # type: ignore[arg-type]
        sent.execute()
    theirs = (
        redis_client.hgetall(execution.key),
        redis_client.hgetall("t:words"),
        redis_client.ttl(execution.key),
    )

    assert ours == theirs
    assert ours[1][b"float"] == b"1796573380.010543"
    assert ours[1][b"enum"] == b"busy"


def test_no_recorded_commands_is_an_empty_array(redis_client: redis.Redis) -> None:
    pipeline = recorder(redis_client)

    assert recorded(pipeline) == list(NO_COMMANDS)
    assert json.loads(NO_COMMANDS[0]) == []
    apply(redis_client, list(NO_COMMANDS))


def test_a_word_that_is_not_text_or_a_number_is_refused(redis_client: redis.Redis) -> None:
    pipeline = recorder(redis_client)
    pipeline.pipeline_execute_command("SET", "t:k", object())  # what redis-py would refuse to send

    with pytest.raises(TypeError, match="is not text, bytes or a number"):
        recorded(pipeline)
