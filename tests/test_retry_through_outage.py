"""Retrying a call that is safe to repeat while Redis is lost, and telling a repeat from a first try.

A worker's START and take are repeated after a lost reply; a repeat that finds its job gone from
the claimed list is its own earlier call's work, not a reaper's, and the worker must know which.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from orchestrator.protocol.reconnect import retried_through_outage, retry_through_outage


def failing_first(times: int) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def action() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise redis.ConnectionError("Redis went away")
        return "answered"

    return calls, action


def test_a_first_try_that_answers_is_not_a_repeat() -> None:
    calls, action = failing_first(0)

    assert retried_through_outage(action, 3, "a call") == ("answered", False)
    assert len(calls) == 1


def test_an_answer_after_a_lost_connection_is_a_repeat() -> None:
    calls, action = failing_first(2)

    assert retried_through_outage(action, 3, "a call") == ("answered", True)
    assert len(calls) == 3


def test_the_last_attempts_error_goes_up_when_redis_stays_away() -> None:
    calls, action = failing_first(5)

    with pytest.raises(redis.ConnectionError, match="went away"):
        retry_through_outage(action, 2, "a call")
    assert len(calls) == 2
