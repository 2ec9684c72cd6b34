"""``redstep produce`` as a user runs it: a real subprocess against the test Redis."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import GROUP, Keys
from orchestrator.runtime.loop import Orchestrator
from orchestrator.runtime.machines import register_shipped_machines
from orchestrator.settings import Settings
from tests.runtime_fixtures import drive

DEMO = Path(__file__).resolve().parents[1] / "producer" / "data" / "demo25.json"
QUEUE = Keys("t").queue("dragons")
RECORD = {
    "dragon_name_str": "Ashgrave",
    "description_str": "Breathes a slow blue flame.",
    "family_str": "red",
    "location_city_str": "portland",
    "location_state_str": "oregon",
    "location_country_str": "usa",
    "location_neighborhood_str": "alberta arts district",
}


def redstep(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "producer.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_invalid_file_is_refused_with_exit_1_and_nothing_is_enqueued(
    tmp_path: Path, subprocess_env: dict[str, str], redis_client: redis.Redis
) -> None:
    records = json.loads(DEMO.read_text())
    del records[3]["dragon_name_str"]
    records[7]["family_str"] = 7
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(records))

    result = redstep(subprocess_env, "produce", str(broken))

    assert result.returncode == 1
    assert result.stdout == ""
    assert "record 3: dragon_name_str: Field required" in result.stderr
    assert "record 7: family_str: Input should be a valid string" in result.stderr
    assert "nothing enqueued" in result.stderr
    assert redis_client.dbsize() == 0


def test_ndjson_on_stdin_is_enqueued_and_json_output_is_only_json(
    subprocess_env: dict[str, str], redis_client: redis.Redis
) -> None:
    lines = "\n".join(json.dumps({**RECORD, "dragon_name_str": f"D{i}"}) for i in range(3))

    result = redstep(subprocess_env, "produce", "-", "--json", stdin=lines)

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["enqueued"] == 3
    assert summary["queue"] == "dragons"
    assert len(set(summary["message_ids"])) == 3
    queued = [fields[b"message_id"].decode() for _, fields in redis_client.xrange(QUEUE)]
    assert queued == summary["message_ids"]


def test_a_single_record_from_flags_is_enqueued_as_given(
    subprocess_env: dict[str, str], redis_client: redis.Redis
) -> None:
    flags = ["--name", "Ashgrave", "--description", "Breathes a slow blue flame.", "--family", "red"]
    flags += ["--city", "portland", "--state", "oregon", "--country", "usa"]
    flags += ["--neighborhood", "alberta arts district", "--confirm"]

    result = redstep(subprocess_env, "produce", *flags)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "enqueued 1 record(s) on queue dragons"
    [(_, fields)] = redis_client.xrange(QUEUE)
    assert json.loads(fields[b"body"]) == {**RECORD, "confirmationRequired": True}
    assert set(fields) == {b"body", b"message_id"}


def test_a_single_record_missing_a_flag_names_the_field(
    subprocess_env: dict[str, str], redis_client: redis.Redis
) -> None:
    result = redstep(subprocess_env, "produce", "--name", "Ashgrave")

    assert result.returncode == 1
    assert "record 0: family_str: Field required" in result.stderr
    assert redis_client.dbsize() == 0


def test_no_input_or_both_inputs_is_a_usage_error(subprocess_env: dict[str, str]) -> None:
    assert redstep(subprocess_env, "produce").returncode == 2
    assert redstep(subprocess_env, "produce", str(DEMO), "--name", "X").returncode == 2


def test_a_big_file_shows_progress_on_stderr_and_enqueues_every_record(
    tmp_path: Path, subprocess_env: dict[str, str], redis_client: redis.Redis
) -> None:
    big = tmp_path / "big.ndjson"
    big.write_text("\n".join(json.dumps({**RECORD, "dragon_name_str": f"D{i}"}) for i in range(1200)))

    result = redstep(subprocess_env, "produce", str(big))

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "enqueued 1200 record(s) on queue dragons"
    assert "1200/1200" in result.stderr
    assert redis_client.xlen(QUEUE) == 1200


def test_an_unreachable_redis_fails_with_exit_1_and_no_password_shown(tmp_path: Path) -> None:
    from orchestrator.runtime.server import free_port

    env = {"REDIS_URL": f"redis://:sekrit@127.0.0.1:{free_port()}/0", "PATH": "/usr/bin:/bin"}

    result = redstep(env, "produce", str(DEMO))

    assert result.returncode == 1
    assert "sekrit" not in result.stderr + result.stdout
    assert "Redis" in result.stderr


def produced_json(env: dict[str, str], *args: str, stdin: str | None = None) -> dict[str, Any]:
    result = redstep(env, "produce", *args, "--json", stdin=stdin)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def queued_ids(redis_client: redis.Redis) -> list[str]:
    return [fields[b"message_id"].decode() for _, fields in redis_client.xrange(QUEUE)]


def subjects(redis_client: redis.Redis) -> Counter[str]:
    log = Keys("t").topic_log("dragon-notifications")
    return Counter(json.loads(fields[b"message"])["Subject"] for _, fields in redis_client.xrange(log))


def drained_and_finished(redis_client: redis.Redis, count: int) -> Any:
    def done(client: Client) -> bool:
        pending = int(redis_client.xpending(QUEUE, GROUP)["pending"]) if redis_client.exists(QUEUE) else 0
        executions = client.status()["executions"]
        finished = executions["RUNNING"] == 0 and sum(executions.values()) == count
        return finished and redis_client.xlen(QUEUE) == 0 and pending == 0

    return done


@pytest.fixture
def worker(subprocess_env: dict[str, str]) -> Iterator[None]:
    """A real ``redstep worker`` process, running the dragon functions."""
    process = subprocess.Popen([sys.executable, "-m", "producer.cli", "worker"], env=subprocess_env)
    yield
    process.kill()
    process.wait()


def test_the_same_file_produced_again_starts_nothing_new_while_its_repeated_names_each_ran(
    redis_client: redis.Redis, settings: Settings, subprocess_env: dict[str, str], worker: None
) -> None:
    register_shipped_machines(redis_client, Keys("t"))
    orchestrator = Orchestrator(redis_client, settings, "o1")
    first = produced_json(subprocess_env, str(DEMO))
    drive(
        redis_client, settings, [orchestrator], drained_and_finished(redis_client, 25), 120, with_worker=False
    )

    again = produced_json(subprocess_env, str(DEMO))
    told = redstep(subprocess_env, "produce", str(DEMO))
    client = drive(
        redis_client, settings, [orchestrator], drained_and_finished(redis_client, 25), 120, with_worker=False
    )

    assert again["message_ids"] == first["message_ids"]
    assert again["idempotency_key"] == first["idempotency_key"]
    assert first["message_ids"] == [f"{first['idempotency_key']}-{index}" for index in range(25)]
    assert first["started_before"] == []
    assert again["started_before"] == first["message_ids"]
    assert told.returncode == 0
    assert told.stdout == "enqueued 25 record(s) on queue dragons\n"
    assert "25 of them were produced before under the same message ids (the same input)" in told.stderr
    assert "give a new --idempotency-key" in told.stderr
    assert {e["name"] for e in client.list_executions()} == set(first["message_ids"])
    # demo25's 5 repeated names are 5 records of their own: they ran, once each, the first time.
    assert subjects(redis_client) == {"Record inserted": 20, "Already exists": 5}


def test_the_same_records_as_an_array_or_as_ndjson_on_stdin_get_the_same_message_ids(
    subprocess_env: dict[str, str], redis_client: redis.Redis
) -> None:
    records = json.loads(DEMO.read_text())
    ndjson = "\n".join(json.dumps(record) for record in records)
    edited = "\n".join(json.dumps(record) for record in [{**records[0], "family_str": "blue"}, *records[1:]])

    from_file = produced_json(subprocess_env, str(DEMO))
    from_stdin = produced_json(subprocess_env, "-", stdin=ndjson)
    one_changed = produced_json(subprocess_env, "-", stdin=edited)

    assert from_stdin["message_ids"] == from_file["message_ids"]
    assert set(one_changed["message_ids"]).isdisjoint(from_file["message_ids"])
    assert Counter(queued_ids(redis_client)) == Counter(
        from_file["message_ids"] * 2 + one_changed["message_ids"]
    )


def test_an_idempotency_key_names_the_messages_and_a_new_key_sends_the_input_anew(
    subprocess_env: dict[str, str], redis_client: redis.Redis
) -> None:
    first = produced_json(subprocess_env, str(DEMO), "--idempotency-key", "sightings-2026-12-06")
    second = produced_json(subprocess_env, str(DEMO), "--idempotency-key", "sightings-2026-12-06_b")

    assert first["message_ids"] == [f"sightings-2026-12-06-{index}" for index in range(25)]
    assert second["message_ids"][0] == "sightings-2026-12-06_b-0"
    assert queued_ids(redis_client) == first["message_ids"] + second["message_ids"]


def test_an_idempotency_key_that_cannot_name_executions_is_a_usage_error_and_nothing_is_enqueued(
    subprocess_env: dict[str, str], redis_client: redis.Redis
) -> None:
    wide = {**subprocess_env, "COLUMNS": "400"}  # the usage box would wrap the message
    spaced = redstep(wide, "produce", str(DEMO), "--idempotency-key", "my batch")
    too_long = redstep(wide, "produce", str(DEMO), "--idempotency-key", "k" * 78)

    assert spaced.returncode == 2 and too_long.returncode == 2
    assert "idempotency key must be 1 to 77 ASCII letters, digits, hyphens or underscores" in spaced.stderr
    assert "got 'my batch'" in spaced.stderr
    assert "1 to 77" in too_long.stderr  # 25 records: the longest id is <key>-24, at most 80 characters
    assert redis_client.dbsize() == 0


def test_a_record_holding_a_lone_surrogate_is_refused_with_its_index_and_field(
    subprocess_env: dict[str, str], redis_client: redis.Redis
) -> None:
    lines = [json.dumps(RECORD), json.dumps({**RECORD, "dragon_name_str": "Smaug \ud800"})]

    result = redstep(subprocess_env, "produce", "-", stdin="\n".join(lines))

    assert result.returncode == 1
    assert (
        "record 1: dragon_name_str: Value error, holds a lone surrogate \\ud800 at character 6"
        in result.stderr
    )
    assert "nothing enqueued" in result.stderr
    assert redis_client.dbsize() == 0
