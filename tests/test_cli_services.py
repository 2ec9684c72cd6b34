"""Each docker-compose service's command, run as a local process against the test Redis.

The commands and the environment come from docker-compose.yml itself, so a broken command
or variable there fails here in seconds, without Docker.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from orchestrator.runtime.server import free_port
from tests.chaos import wait_until
from tests.processes import stop_all

COMPOSE = Path(__file__).resolve().parents[1] / "docker-compose.yml"


def compose_command(service: str) -> list[str]:
    """The exec-form ``command:`` of ``service`` in docker-compose.yml."""
    text = COMPOSE.read_text()
    block = re.search(rf"^  {service}:\n(.*?)(?=^  \S|^\S|\Z)", text, re.M | re.S)
    assert block, f"no service {service} in {COMPOSE}"
    command = re.search(r"^    command: (\[.*\])$", block.group(1), re.M)
    assert command, f"service {service} has no one-line exec-form command"
    return json.loads(command.group(1))


def healthcheck_command() -> list[str]:
    """The services' shared healthcheck, ``CMD`` form."""
    test = re.search(r'^    test: (\["CMD", .*\])$', COMPOSE.read_text(), re.M)
    assert test, "no CMD healthcheck in the redstep anchor"
    return json.loads(test.group(1))[1:]


def local(command: list[str]) -> list[str]:
    """The command with ``redstep`` run by this interpreter (the package need not be installed)."""
    assert command[0] == "redstep"
    return [sys.executable, "-m", "producer.cli", *command[1:]]


@pytest.fixture
def compose_env(subprocess_env: dict[str, str]) -> dict[str, str]:
    """The environment compose gives the services: REDIS_URL empty, the address in its parts."""
    address = urlsplit(subprocess_env["REDIS_URL"])
    env = {key: value for key, value in subprocess_env.items() if not key.startswith("REDSTEP_")}
    env.update(
        REDIS_URL="",
        REDSTEP_REDIS_HOST=str(address.hostname),
        REDSTEP_REDIS_PORT=str(address.port),
        REDSTEP_REDIS_PASSWORD="",
        REDSTEP_PREFIX="t",
    )
    return env


@pytest.fixture
def services(compose_env: dict[str, str], tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        for service in ("orchestrator", "worker"):
            with (tmp_path / f"{service}.log").open("w") as log:
                command = local(compose_command(service))
                started.append(subprocess.Popen(command, env=compose_env, stderr=log, stdout=log))
        yield started
    finally:
        stop_all(started)


def test_compose_commands_are_exec_form_redstep_commands() -> None:
    assert compose_command("orchestrator") == ["redstep", "orchestrator"]
    assert compose_command("worker") == ["redstep", "worker"]
    assert healthcheck_command() == ["redstep", "check"]


def test_check_fails_with_exit_1_while_no_orchestrator_runs(compose_env: dict[str, str]) -> None:
    result = subprocess.run(
        local(healthcheck_command()), env=compose_env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "orchestrator" in result.stderr


def test_check_fails_when_redis_is_unreachable_without_showing_the_password(
    compose_env: dict[str, str],
) -> None:
    env = {**compose_env, "REDSTEP_REDIS_PORT": str(free_port()), "REDSTEP_REDIS_PASSWORD": "sekrit"}
    result = subprocess.run(local(healthcheck_command()), env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "sekrit" not in result.stderr
    assert "***" in result.stderr


def test_the_service_commands_run_the_pipeline_and_stop_on_sigterm(
    services: list[subprocess.Popen[bytes]], compose_env: dict[str, str]
) -> None:
    def redstep(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            local(["redstep", *args]), env=compose_env, capture_output=True, text=True, timeout=60
        )

    def healthy() -> bool:
        assert all(p.poll() is None for p in services), "a service exited"
        return redstep("check").returncode == 0

    wait_until(healthy, 60, "the healthcheck to pass", interval=0.3)

    flags = [
        "--name",
        "Ashgrave",
        "--description",
        "A young dragon.",
        "--family",
        "red",
        "--city",
        "portland",
    ]
    flags += ["--state", "oregon", "--country", "usa", "--neighborhood", "alberta arts district"]
    assert redstep("produce", *flags).returncode == 0
    notification = json.loads(redstep("subscribe", "--json", "--replay", "--count", "1").stdout)
    assert notification["Subject"] == "Record inserted"
    assert "Ashgrave" in notification["Message"]

    for process in services:
        process.send_signal(signal.SIGTERM)
    for process in services:
        assert process.wait(timeout=30) == 0, f"{process.args} did not stop cleanly on SIGTERM"


def interpolated(words: list[str], variables: dict[str, str]) -> list[str]:
    """``words`` with ``${NAME:-default}`` replaced as compose does it."""

    def value(match: re.Match[str]) -> str:
        return variables.get(match.group(1)) or match.group(2)

    return [re.sub(r"\$\{(\w+):-([^}]*)\}", value, word) for word in words]


def api_healthcheck() -> list[str]:
    """The api service's healthcheck, ``CMD`` form (a YAML list, one item a line)."""
    block = re.search(r"^  api:\n(.*?)(?=^  \S|^\S|\Z)", COMPOSE.read_text(), re.M | re.S)
    assert block, "no api service"
    test = re.search(r"^      test:\n((?:        - .*\n)+)", block.group(1), re.M)
    assert test, "the api service has no CMD-list healthcheck"
    items = [line.strip().removeprefix("- ") for line in test.group(1).splitlines()]
    return [json.loads(item) if item.startswith('"') else item for item in items]


def test_the_api_service_serves_signed_requests_and_its_healthcheck_passes(
    services: list[subprocess.Popen[bytes]], compose_env: dict[str, str], tmp_path: Path
) -> None:
    import boto3

    port = free_port()
    variables = {"REDSTEP_API_PORT": str(port), "REDSTEP_API_BIND": "127.0.0.1"}
    command = interpolated(compose_command("api"), variables)
    assert command == ["redstep", "serve", "--host", "127.0.0.1", "--port", str(port)]
    healthcheck = interpolated(api_healthcheck(), variables)
    assert healthcheck[:3] == ["CMD", "python", "-c"]
    check = [sys.executable, *healthcheck[2:]]
    env = {
        **compose_env,
        "REDSTEP_ACCESS_KEY_ID": "AKIDCOMPOSE",
        "REDSTEP_SECRET_ACCESS_KEY": "compose-secret",
    }
    assert subprocess.run(check, env=env, capture_output=True, timeout=60).returncode != 0  # nothing yet

    with (tmp_path / "api.log").open("w") as log:
        api = subprocess.Popen(local(command), env=env, stdout=log, stderr=log)
    try:
        wait_until(
            lambda: subprocess.run(check, env=env, capture_output=True, timeout=60).returncode == 0,
            60,
            "the api healthcheck to pass",
            interval=0.3,
        )
        sfn = boto3.client(
            "stepfunctions",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="AKIDCOMPOSE",
            aws_secret_access_key="compose-secret",
        )
        machines = {m["name"]: m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
        record = {
            "dragon_name_str": "Composeclaw", "description_str": "Served.", "family_str": "red",
            "location_city_str": "portland", "location_state_str": "oregon", "location_country_str": "usa",
            "location_neighborhood_str": "alberta arts district",
        }  # fmt: skip
        run = sfn.start_execution(stateMachineArn=machines["DragonPipeline"], input=json.dumps(record))

        def finished() -> bool:
            return sfn.describe_execution(executionArn=run["executionArn"])["status"] != "RUNNING"

        wait_until(finished, 60, "the execution to finish", interval=0.2)
        assert sfn.describe_execution(executionArn=run["executionArn"])["status"] == "SUCCEEDED"
        api.send_signal(signal.SIGTERM)
        # uvicorn re-raises the SIGTERM it handled once it has shut down: either way it stopped.
        assert api.wait(timeout=30) in (0, -signal.SIGTERM), (tmp_path / "api.log").read_text()
    finally:
        stop_all([api])
