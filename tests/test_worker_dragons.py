"""ValidateDragon and AddDragon on a real Redis dragon store."""

from __future__ import annotations

import json
import threading

import pytest
import redis

from worker.context import LambdaContext
from worker.dragons import (
    AddDragon,
    DragonAlreadyExists,
    DragonStore,
    InvalidDragonRecord,
    ValidateDragon,
)

SMOK = {
    "dragon_name_str": "Smok",
    "description_str": "Lives under Wawel Hill.",
    "family_str": "red",
    "location_city_str": "Krakow",
    "location_state_str": "Lesser Poland",
    "location_country_str": "Poland",
    "location_neighborhood_str": "Old Town",
    "reportingPhoneNumber": "+48 12 000 00 00",
    "confirmationRequired": False,
}


def context_on(client: redis.Redis, function_name: str = "AddDragon") -> LambdaContext:
    return LambdaContext(function_name=function_name, redis=client, prefix="t")


def test_validate_says_a_new_dragon_does_not_exist(redis_client: redis.Redis) -> None:
    assert ValidateDragon(SMOK, context_on(redis_client, "ValidateDragon")) == {"exists": False}


def test_validate_says_an_added_dragon_exists(redis_client: redis.Redis) -> None:
    AddDragon(SMOK, context_on(redis_client))

    assert ValidateDragon(SMOK, context_on(redis_client, "ValidateDragon")) == {"exists": True}


def test_add_stores_the_record_fields_only_under_the_prefix(redis_client: redis.Redis) -> None:
    event = {**SMOK, "validation": {"exists": False}}

    assert AddDragon(event, context_on(redis_client)) == {"dragon_name_str": "Smok", "inserted": True}

    assert json.loads(redis_client.hget("t:dragons", "Smok")) == SMOK
    assert DragonStore(redis_client, "t").count() == 1


def test_adding_a_stored_name_raises_dragon_already_exists_and_keeps_the_first_record(
    redis_client: redis.Redis,
) -> None:
    AddDragon(SMOK, context_on(redis_client))

    with pytest.raises(DragonAlreadyExists, match=r"^Dragon Smok already exists$"):
        AddDragon({**SMOK, "family_str": "green"}, context_on(redis_client))

    assert DragonStore(redis_client, "t").get("Smok")["family_str"] == "red"


def test_two_racing_adds_of_one_name_insert_exactly_once(redis_url: str) -> None:
    names = [f"Racer{i}" for i in range(50)]
    outcomes: dict[str, list[str]] = {name: [] for name in names}
    start = threading.Barrier(2)

    def add_all() -> None:
        client = redis.Redis.from_url(redis_url)
        start.wait()
        for name in names:
            try:
                AddDragon({**SMOK, "dragon_name_str": name}, context_on(client))
                outcomes[name].append("inserted")
            except DragonAlreadyExists:
                outcomes[name].append("already exists")
        client.close()

    racers = [threading.Thread(target=add_all) for _ in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()

    assert all(sorted(outcome) == ["already exists", "inserted"] for outcome in outcomes.values())
    assert DragonStore(redis.Redis.from_url(redis_url), "t").count() == 50


@pytest.mark.parametrize("event", [{}, {"dragon_name_str": ""}, {"dragon_name_str": 7}, ["Smok"], None])
def test_an_event_without_a_dragon_name_is_an_invalid_record(
    redis_client: redis.Redis, event: object
) -> None:
    with pytest.raises(InvalidDragonRecord, match="dragon_name_str"):
        ValidateDragon(event, context_on(redis_client))  # type: ignore[arg-type]


def test_a_context_without_a_connection_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="needs a Redis connection"):
        ValidateDragon(SMOK, LambdaContext(function_name="ValidateDragon"))


def test_the_context_looks_like_lambdas() -> None:
    context = LambdaContext(function_name="AddDragon")

    assert context.invoked_function_arn == "arn:aws:lambda:us-east-1:000000000000:function:AddDragon"
    assert context.log_group_name == "/aws/lambda/AddDragon"
    assert context.function_version == "$LATEST"
    assert context.memory_limit_in_mb == 128
    assert 0 < context.get_remaining_time_in_millis() <= 900_000  # Lambda's longest timeout, every task's
    assert context.aws_request_id != LambdaContext(function_name="AddDragon").aws_request_id


def test_a_retried_add_by_the_execution_that_inserted_the_dragon_succeeds_again(
    redis_client: redis.Redis,
) -> None:
    # Given an insert whose worker died before it could report,
    first = LambdaContext(function_name="AddDragon", redis=redis_client, prefix="t", execution="exec-1")
    AddDragon(SMOK, first)

    # when the same execution's retry runs AddDragon again, it succeeds as the first attempt did;
    assert AddDragon(SMOK, first) == {"dragon_name_str": "Smok", "inserted": True}

    # and another execution still finds the name taken.
    other = LambdaContext(function_name="AddDragon", redis=redis_client, prefix="t", execution="exec-2")
    with pytest.raises(DragonAlreadyExists):
        AddDragon(SMOK, other)
    assert DragonStore(redis_client, "t").get("Smok") == SMOK
    assert DragonStore(redis_client, "t").inserted_by("Smok") == "exec-1"
