"""Dead letters: poison records and poison events end up inspectable, and can be sent back.

Given a record that is received ``max_receive_count`` times without its execution starting,
it sits in the queue's dead-letter stream with its reason and receive count; ``redstep dlq``
lists, shows, redrives (with their message ids) and purges such letters. An event whose iteration
keeps failing is moved to the malformed stream with its delivery count instead of being
claimed again forever.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import redis

from orchestrator.runtime.client import Client
from orchestrator.runtime.dead_letters import DeadLetters
from orchestrator.runtime.keys import GROUP, Keys
from orchestrator.runtime.loop import Orchestrator
from orchestrator.runtime.sources import EventSourceMapping, send_messages
from orchestrator.settings import Settings
from tests.chaos import wait_until
from tests.runtime_fixtures import one_task_machine


def redstep(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "producer.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def dead_letter_records(redis_client: redis.Redis, settings: Settings, bodies: list[Any]) -> list[str]:
    """Send ``bodies`` and let a consumer that never acknowledges wear them out; their message ids."""
    ids = send_messages(redis_client, settings, settings.source_queue, bodies)
    quick = settings.model_copy(update={"visibility_timeout_seconds": 0.05, "max_receive_count": 2})
    mapping = EventSourceMapping(redis_client, quick, "careless")
    dead = Keys(settings.prefix).dead_letters(settings.source_queue)

    def worn_out() -> bool:
        mapping.poll()
        return redis_client.xlen(dead) >= len(bodies)

    wait_until(worn_out, 30, f"{len(bodies)} dead letter(s)", interval=0.06)
    return ids


def test_a_record_never_acknowledged_becomes_a_dead_letter_with_its_reason_and_receive_count(
    redis_client: redis.Redis, settings: Settings, subprocess_env: dict[str, str]
) -> None:
    (message_id,) = dead_letter_records(redis_client, settings, [{"dragon": "Smaug"}])

    listed = redstep(subprocess_env, "dlq", "list", "--json")

    assert listed.returncode == 0, listed.stderr
    (letter,) = json.loads(listed.stdout)
    assert letter["queue"] == settings.source_queue
    assert letter["message_id"] == message_id
    assert letter["receive_count"] == 2
    assert "maxReceiveCount 2 exceeded" in letter["reason"]
    assert letter["body"] == {"dragon": "Smaug"}
    shown = redstep(subprocess_env, "dlq", "show", letter["id"], "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout) == letter


def test_redriven_dead_letters_return_to_their_queue_with_their_message_ids_and_start_executions(
    redis_client: redis.Redis, settings: Settings, subprocess_env: dict[str, str]
) -> None:
    message_ids = dead_letter_records(redis_client, settings, [{"n": 1}, {"n": 2}])
    letter_ids = [letter.id for letter in DeadLetters(redis_client, settings).list()]
    keys = Keys(settings.prefix)

    redriven = redstep(subprocess_env, "dlq", "redrive", "--all", "--json")

    assert redriven.returncode == 0, redriven.stderr
    report = json.loads(redriven.stdout)
    assert report["redriven"] == 2 and report["message_ids"] == message_ids
    assert redis_client.xlen(keys.dead_letters(settings.source_queue)) == 0
    Client(redis_client, settings).register_machine("One", one_task_machine())
    orchestrator = Orchestrator(redis_client, settings.model_copy(update={"state_machine": "One"}), "o1")
    orchestrator.run_once()
    client = Client(redis_client, settings)
    assert [client.describe(i)["input"] for i in message_ids] == [{"n": 1}, {"n": 2}]
    again = redstep(subprocess_env, "dlq", "redrive", *letter_ids)
    assert again.returncode == 1 and "2 dead letter(s) not found" in again.stderr


def test_one_dead_letter_is_redriven_by_its_id_and_the_others_stay(
    redis_client: redis.Redis, settings: Settings, subprocess_env: dict[str, str]
) -> None:
    dead_letter_records(redis_client, settings, [{"n": 1}, {"n": 2}])
    letters = DeadLetters(redis_client, settings).list()

    redriven = redstep(subprocess_env, "dlq", "redrive", letters[1].id)

    assert redriven.returncode == 0 and "redrove 1 dead letter(s)" in redriven.stdout
    assert [letter.body for letter in DeadLetters(redis_client, settings).list()] == [{"n": 1}]


def test_purge_asks_first_and_deletes_every_dead_letter_when_confirmed(
    redis_client: redis.Redis, settings: Settings, subprocess_env: dict[str, str]
) -> None:
    dead_letter_records(redis_client, settings, [{"n": 1}, {"n": 2}, {"n": 3}])

    refused = subprocess.run(
        [sys.executable, "-m", "producer.cli", "dlq", "purge"],
        env=subprocess_env, input="n\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    purged = redstep(subprocess_env, "dlq", "purge", "--yes", "--json")

    assert refused.returncode == 1 and "nothing deleted" in refused.stderr
    assert purged.returncode == 0 and json.loads(purged.stdout) == {"purged": 3}
    assert DeadLetters(redis_client, settings).list() == []


def test_an_unknown_dead_letter_is_not_found_and_redrive_without_ids_is_a_usage_error(
    redis_client: redis.Redis, subprocess_env: dict[str, str]
) -> None:
    shown = redstep(subprocess_env, "dlq", "show", "1-1")
    bogus = redstep(subprocess_env, "dlq", "show", "not-an-id")
    usage = redstep(subprocess_env, "dlq", "redrive")

    assert shown.returncode == 1 and "dead letter 1-1 not found" in shown.stderr
    assert bogus.returncode == 1
    assert usage.returncode == 2


def test_an_event_whose_iteration_keeps_failing_is_moved_aside_with_its_delivery_count(
    redis_client: redis.Redis, settings: Settings
) -> None:
    poison_settings = settings.model_copy(update={"max_event_deliveries": 3})
    client = Client(redis_client, settings)
    client.register_machine("One", one_task_machine())
    name = client.start_execution("One", {})
    orchestrator = Orchestrator(redis_client, poison_settings, "o1", claim_idle_seconds=0.01)
    keys = Keys(settings.prefix)

    def always_fails(names: list[str], known: object, trusted: bool = False) -> dict[str, Any]:
        raise RuntimeError("this event poisons every iteration")

    orchestrator.store.load_known = always_fails  # type: ignore[method-assign]
    client.stop_execution(name)
    failures = 0

    def moved_aside() -> bool:
        nonlocal failures
        try:
            orchestrator.run_once()
        except RuntimeError:
            failures += 1
        return redis_client.xlen(keys.malformed) > 0

    wait_until(moved_aside, 30, "the poisonous event to be moved aside", interval=0.02)

    ((_, fields),) = redis_client.xrange(keys.malformed)
    moved = {k.decode(): v.decode() for k, v in fields.items()}
    assert failures == 3
    assert moved["receive_count"] == "4"
    assert "delivered 4 times without its transition being committed (limit 3)" in moved["reason"]
    assert json.loads(json.loads(moved["fields"])["event"])["type"] == "StopExecution"
    assert int(redis_client.xpending(keys.events, GROUP)["pending"]) == 0
    assert client.describe(name)["status"] == "RUNNING"


def test_an_event_whose_commit_redis_always_refuses_is_moved_aside_with_the_reason(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client = Client(redis_client, settings)
    client.register_machine("One", one_task_machine())
    name = client.start_execution("One", {})
    keys = Keys(settings.prefix)
    redis_client.delete(keys.history(name))
    redis_client.set(keys.history(name), "not a list")  # every commit of this execution fails
    redis_client.set(keys.status("FAILED"), "not an index")  # and so does failing it alone
    client.stop_execution(name)

    Orchestrator(redis_client, settings, "o1").run_once()

    ((_, fields),) = redis_client.xrange(keys.malformed)
    assert b"could not be committed" in fields[b"reason"]
    assert int(redis_client.xpending(keys.events, GROUP)["pending"]) == 0
