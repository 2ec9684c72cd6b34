"""``redstep produce`` as a user runs it: a real subprocess against the test Redis."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import redis

from orchestrator.runtime.keys import Keys

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
