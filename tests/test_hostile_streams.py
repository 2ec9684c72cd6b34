"""Hostile entries on the event stream and on a source queue, against a real redis-server.

Whatever a writer puts on ``{p}:events`` or ``{p}:queue:<name>`` (random bytes, random JSON,
missing fields), one orchestrator iteration moves it to ``{p}:malformed`` with its reason and
acknowledges it, keeps running, and still processes the valid entries sent alongside.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.protocol.decoding import strict_loads
from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import GROUP, Keys
from orchestrator.runtime.loop import Orchestrator
from orchestrator.runtime.sources import send_messages
from orchestrator.settings import Settings
from tests.runtime_fixtures import one_task_machine

STREAMS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)
event_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["TaskSucceeded", "TaskFailed", "Bogus", 3]),
        "execution": st.text(max_size=5) | st.integers(),
        "token": st.text(max_size=5) | st.none(),
    },
)


def hostile_entries(field: bytes) -> st.SearchStrategy[dict[bytes, bytes]]:
    """Entries without ``field``, or with it holding random bytes, random JSON or a broken event."""
    raw_bytes = st.text(max_size=20).map(str.encode) | st.binary(max_size=20)
    missing = st.dictionaries(st.sampled_from([b"other", b"Event", b"BODY", b""]), raw_bytes, min_size=1)
    payload = (
        raw_bytes.filter(lambda raw: not _is_json(raw))
        | json_values.filter(lambda v: not isinstance(v, dict)).map(lambda v: json.dumps(v).encode())
        | st.just(b"[" * 100 + b"]" * 100)
        # What Python's json reads but JSON has not.
        | st.sampled_from([b'{"x": NaN}', b"[Infinity]", b"-Infinity", b'{"x": 1e400}'])
    )
    if field == b"event":
        payload = payload | event_like.map(lambda v: json.dumps(v).encode())
    return missing | payload.map(lambda raw: {field: raw})


def _is_json(raw: bytes) -> bool:
    """Whether ``raw`` is JSON text (RFC 8259): Python's json also reads NaN and the infinities."""
    try:
        strict_loads(raw)
    except ValueError:
        return False
    return True


def fresh(redis_client: redis.Redis, settings: Settings) -> tuple[Client, Keys]:
    redis_client.flushall()
    client = Client(redis_client, settings)
    client.register_machine("One", one_task_machine())
    return client, Keys(settings.prefix)


def malformed(redis_client: redis.Redis, keys: Keys) -> list[dict[str, str]]:
    return [
        {key.decode(): value.decode() for key, value in fields.items()}
        for _, fields in redis_client.xrange(keys.malformed)
    ]


def pending(redis_client: redis.Redis, stream: str) -> int:
    return int(redis_client.xpending(stream, GROUP)["pending"])


@STREAMS
@given(entries=st.lists(hostile_entries(b"event"), min_size=1, max_size=6))
def test_hostile_event_entries_are_moved_aside_with_a_reason_and_a_valid_event_beside_them_is_applied(
    redis_client: redis.Redis, settings: Settings, entries: list[dict[bytes, bytes]]
) -> None:
    client, keys = fresh(redis_client, settings)
    orchestrator = Orchestrator(redis_client, settings, "o1")
    name = client.start_execution("One", {"dragon": "Smaug"})
    for fields in entries[: len(entries) // 2]:
        redis_client.xadd(keys.events, fields)
    client.stop_execution(name, error="Stopped", cause="by the test")
    for fields in entries[len(entries) // 2 :]:
        redis_client.xadd(keys.events, fields)

    orchestrator.run_once()

    assert client.describe(name)["status"] == "ABORTED"
    moved = malformed(redis_client, keys)
    assert len(moved) == len(entries)
    assert all(entry["stream"] == keys.events and entry["reason"] for entry in moved)
    assert pending(redis_client, keys.events) == 0
    assert redis_client.xlen(keys.events) == 0


@STREAMS
@given(entries=st.lists(hostile_entries(b"body"), min_size=1, max_size=6), valid=st.integers(1, 4))
def test_hostile_queue_entries_are_moved_aside_and_the_valid_records_beside_them_start_executions(
    redis_client: redis.Redis, settings: Settings, entries: list[dict[bytes, bytes]], valid: int
) -> None:
    quick = settings.model_copy(update={"state_machine": "One", "source_queue": "q"})
    client, keys = fresh(redis_client, quick)
    orchestrator = Orchestrator(redis_client, quick, "o1")
    stream = keys.queue("q")
    for fields in entries:
        redis_client.xadd(stream, fields)
    ids = send_messages(redis_client, quick, "q", [{"n": index} for index in range(valid)])

    orchestrator.run_once()

    assert [client.describe(message_id)["input"] for message_id in ids] == [{"n": i} for i in range(valid)]
    moved = malformed(redis_client, keys)
    # A body that is JSON but not an object is still a message: it starts an execution, as SQS allows.
    non_json = [fields for fields in entries if not _is_json(fields.get(b"body", b"\xff"))]
    assert len(moved) == len(non_json)
    assert all(entry["stream"] == stream and entry["reason"] for entry in moved)
    assert pending(redis_client, stream) == 0


@pytest.mark.parametrize("fields", [{b"event": b"\xff\xfe{"}, {b"other": b"\x80"}], ids=["event", "other"])
def test_an_event_that_is_not_utf8_is_moved_aside_and_the_orchestrator_goes_on(
    fields: dict[bytes, bytes], redis_client: redis.Redis, settings: Settings
) -> None:
    client, keys = fresh(redis_client, settings)
    orchestrator = Orchestrator(redis_client, settings, "o1")
    name = client.start_execution("One", {})
    redis_client.xadd(keys.events, fields)
    client.stop_execution(name)

    orchestrator.run_once()

    assert client.describe(name)["status"] == "ABORTED"
    assert len(malformed(redis_client, keys)) == 1


DEEP = b"[" * 100_000 + b"]" * 100_000


def test_an_event_nested_100000_levels_deep_is_moved_aside_not_a_crash_of_the_iteration(
    redis_client: redis.Redis, settings: Settings
) -> None:
    _, keys = fresh(redis_client, settings)
    orchestrator = Orchestrator(redis_client, settings, "o1")
    redis_client.xadd(keys.events, {b"event": DEEP})

    orchestrator.run_once()

    assert len(malformed(redis_client, keys)) == 1


def test_a_queue_body_nested_100000_levels_deep_is_moved_aside_not_a_crash_of_the_iteration(
    redis_client: redis.Redis, settings: Settings
) -> None:
    quick = settings.model_copy(update={"state_machine": "One", "source_queue": "q"})
    _, keys = fresh(redis_client, quick)
    orchestrator = Orchestrator(redis_client, quick, "o1")
    redis_client.xadd(keys.queue("q"), {b"body": DEEP})

    orchestrator.run_once()

    assert len(malformed(redis_client, keys)) == 1


def test_a_task_report_too_deep_for_the_engine_fails_its_execution_instead_of_the_loop(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client, keys = fresh(redis_client, settings)
    orchestrator = Orchestrator(redis_client, settings, "o1")
    name = client.start_execution("One", {})
    token = next(iter(json.loads(redis_client.hget(keys.execution(name), "execution"))["tokens"]))
    output: Any = 1
    for _ in range(900):
        output = [output]
    event = {"type": "TaskSucceeded", "execution": name, "token": token, "output": output}
    redis_client.xadd(keys.events, {"event": json.dumps(event)})

    orchestrator.run_once()

    assert client.describe(name)["status"] in {"SUCCEEDED", "FAILED"}
    assert pending(redis_client, keys.events) == 0
