"""Optimistic commits: an attempt that loses a race runs again, up to one policy, then a clear error.

Given a commit that another writer keeps beating (on a real Redis: the version of an
execution, or a WATCHed dead-letter stream, changed between the read and the write), the
writer tries again with what it lost in hand, and gives up after the policy's attempts with
an error that names what conflicted and says nothing was written. One lost race costs nothing
but a second attempt.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import redis
from redis.client import Pipeline

from orchestrator.runtime.client import Client
from orchestrator.runtime.dead_letters import DeadLetter, DeadLetters
from orchestrator.runtime.keys import BODY_FIELD, Keys
from orchestrator.runtime.optimistic import (
    COMMIT_RETRIES,
    Attempt,
    CommitConflict,
    Lost,
    RetryPolicy,
    commit_optimistically,
    watched_key_changed,
)
from orchestrator.runtime.sources import MESSAGE_ID_FIELD
from orchestrator.runtime.store import Conflict
from orchestrator.settings import Settings

PASS_MACHINE = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}


def test_the_first_attempt_that_commits_gives_the_result_and_retries_see_what_they_lost() -> None:
    seen: list[tuple[int, bool, list[str]]] = []

    def attempt(race: Attempt) -> str | Lost:
        seen.append((race.number, race.retry, [c.key for c in race.conflicts]))
        return "committed" if race.number == 2 else Lost([Conflict("version", f"exec:{race.number}")])

    assert commit_optimistically("the test commit", attempt) == "committed"
    assert seen == [(0, False, []), (1, True, ["exec:0"]), (2, True, ["exec:0", "exec:1"])]


def test_a_commit_that_loses_every_race_says_what_conflicted_and_that_nothing_was_written() -> None:
    calls = []

    def attempt(race: Attempt) -> Lost | None:
        calls.append(race.number)
        return Lost([Conflict("version", "p:exec:{a}"), Conflict("acked", "p:events", "1-0")])

    with pytest.raises(CommitConflict) as raised:
        commit_optimistically("the start of execution a", attempt, RetryPolicy(attempts=3))
    assert calls == [0, 1, 2]
    message = str(raised.value)
    assert message.startswith("the start of execution a lost 3 race(s) in a row")
    assert "nothing written" in message
    assert "the version of p:exec:{a} changed (x3)" in message
    assert "entry 1-0 of p:events was acknowledged by another (x3)" in message
    assert len(raised.value.conflicts) == 6


def test_a_lost_race_must_say_what_conflicted_and_a_policy_needs_an_attempt() -> None:
    with pytest.raises(ValueError, match="without saying what conflicted"):
        commit_optimistically("the test commit", lambda race: Lost([]))
    with pytest.raises(ValueError, match="at least one attempt"):
        RetryPolicy(attempts=0)
    assert str(CommitConflict("x", 1, watched_key_changed("k").conflicts)).endswith("k changed while watched")


def bumping_clock(redis_client: redis.Redis, key: str, times: int) -> Callable[[], float]:
    """A clock that, the first ``times`` calls, moves the execution on as another writer would."""
    calls = 0

    def now() -> float:
        nonlocal calls
        calls += 1
        if calls <= times:
            redis_client.hincrby(key, "version", 1)
        return 1_700_000_000.0

    return now


def test_a_start_another_writer_keeps_beating_raises_naming_the_execution_key(
    redis_client: redis.Redis, settings: Settings
) -> None:
    key = Keys(settings.prefix).execution("contested")
    clock = bumping_clock(redis_client, key, times=COMMIT_RETRIES.attempts)
    client = Client(redis_client, settings, clock=clock)
    client.register_machine("Quick", PASS_MACHINE)
    with pytest.raises(
        CommitConflict, match=r"lost 5 race\(s\).*the version of .*exec:\{contested\} changed"
    ):
        client.start_new_execution("Quick", {}, "contested")
    assert redis_client.hget(key, "execution") is None  # nothing of the start was written


def test_a_start_that_loses_its_race_to_another_start_of_the_name_says_the_name_is_taken(
    redis_client: redis.Redis, settings: Settings
) -> None:
    other = Client(redis_client, settings)
    other.register_machine("Quick", PASS_MACHINE)
    calls = 0

    def clock() -> float:
        nonlocal calls
        calls += 1
        if calls == 1:  # between this start's read and its commit, another client starts the name
            assert other.start_new_execution("Quick", {"by": "other"}, "taken")
        return 1_700_000_000.0

    assert (
        Client(redis_client, settings, clock=clock).start_new_execution("Quick", {"by": "me"}, "taken")
        is False
    )
    assert calls == 1  # the second attempt read the other's execution and stopped there
    assert other.describe("taken")["input"] == {"by": "other"}


class InterferingPipeline(Pipeline):
    """A pipeline whose reads are followed, ``times`` times, by another client's write to ``key``."""

    other: redis.Redis
    key: str
    times: int

    def xrange(self, *args: Any, **kwargs: Any) -> Any:
        found = super().xrange(*args, **kwargs)
        if type(self).times > 0:
            type(self).times -= 1
            self.other.xadd(self.key, {BODY_FIELD: "another letter arrives"})
        return found


def interfering_redis(redis_url: str, other: redis.Redis, key: str, times: int) -> redis.Redis:
    pipeline_class = type("Interfering", (InterferingPipeline,), {"other": other, "key": key, "times": times})

    class Interfering(redis.Redis):
        def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
            return pipeline_class(self.connection_pool, self.response_callbacks, transaction, shard_hint)

    return Interfering.from_url(redis_url)


@pytest.mark.parametrize("times", [1, COMMIT_RETRIES.attempts])
def test_a_dead_letter_redrive_retries_a_changed_stream_and_gives_up_after_the_policy(
    redis_url: str, redis_client: redis.Redis, settings: Settings, times: int
) -> None:
    keys = Keys(settings.prefix)
    dead = keys.dead_letters(settings.source_queue)
    letter_id = redis_client.xadd(dead, {BODY_FIELD: json.dumps({"n": 1}), "reason": "poison"}).decode()
    letters = DeadLetters(interfering_redis(redis_url, redis_client, dead, times), settings)
    letter = DeadLetter(
        id=letter_id, queue=settings.source_queue, message_id="m-1", reason="poison", receive_count=1,
        body={"n": 1},
    )  # fmt: skip
    if times < COMMIT_RETRIES.attempts:
        assert letters.redrive_one(letter) == "m-1"
        sent = redis_client.xrange(keys.queue(settings.source_queue))
        assert [fields[MESSAGE_ID_FIELD.encode()] for _, fields in sent] == [b"m-1"]
        assert not redis_client.xrange(dead, letter_id, letter_id)
    else:
        with pytest.raises(CommitConflict, match=f"{dead} changed while watched"):
            letters.redrive_one(letter)
        assert redis_client.xrange(dead, letter_id, letter_id)  # still a dead letter
        assert not redis_client.exists(keys.queue(settings.source_queue))
