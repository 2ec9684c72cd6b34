"""Access: a password, an ACL user and TLS in REDIS_URL just work, and no secret is ever printed.

Each test runs real ``redstep`` processes (orchestrator, worker, produce, subscribe, status,
check) against a real redis-server configured that way, then searches everything they
printed for the secret.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from urllib.parse import quote

import pytest
import redis

from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.server import RedisServer, free_port
from orchestrator.runtime.sources import EventSourceMapping, send_messages
from orchestrator.settings import Settings, masked_url
from tests.access_fixtures import (
    ACL_PASSWORD,
    ACL_USER,
    PASSWORD,
    PREFIX,
    CliSession,
    acl_server,
    cli_session,
    password_server,
    redstep_command,
    redstep_env,
    run_demo_pipeline,
    tls_server,
)
from tests.chaos import wait_until
from tests.runtime_fixtures import one_task_machine

__all__ = ["acl_server", "cli_session", "password_server", "tls_server"]  # fixtures, used by name

# How long a service may keep retrying an unreachable Redis before the test stops it and reads
# what it said; generous, because a loaded test machine can take seconds just to start Python.
SERVICE_SECONDS = 15.0


def assert_secret_absent(text: str, secret: str) -> None:
    """Neither ``secret``, nor its URL-encoded form, nor its first characters appear in ``text``."""
    for form in {secret, quote(secret, safe=""), quote(secret)}:
        assert form not in text
    # A half-masked URL (cut at a character the parser stumbled on) would still show the start.
    assert secret[:4] not in text


@pytest.mark.timeout(180)
def test_the_pipeline_runs_behind_a_password_and_no_output_shows_it(
    password_server: RedisServer, cli_session: CliSession
) -> None:
    cli_session.env = redstep_env(password_server.url)

    run_demo_pipeline(cli_session)

    printed = cli_session.everything_printed()
    assert_secret_absent(printed, PASSWORD)
    assert f"redis://:***@127.0.0.1:{password_server.port}/0" in printed


@pytest.mark.timeout(180)
def test_the_pipeline_runs_as_an_acl_user_limited_to_its_keys_and_safe_commands(
    acl_server: RedisServer, cli_session: CliSession
) -> None:
    cli_session.env = redstep_env(acl_server.url)

    run_demo_pipeline(cli_session)

    printed = cli_session.everything_printed()
    assert_secret_absent(printed, ACL_PASSWORD)
    assert f"redis://{ACL_USER}:***@127.0.0.1:{acl_server.port}/0" in printed
    # RQ swallows a refused INFO or CLIENT LIST and carries on with a guess; the ACL line must
    # leave it nothing to guess.
    assert "NOPERM" not in printed
    assert "not supported" not in printed


@pytest.mark.parametrize(
    "command",
    [
        ["FLUSHALL"],
        ["FLUSHDB"],
        ["CONFIG", "GET", "requirepass"],
        ["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
        ["DEBUG", "SLEEP", "0"],
        ["SHUTDOWN", "NOSAVE"],
        ["KEYS", "*"],
        ["ACL", "LIST"],
        ["SET", "someone-else:key", "1"],
        ["PUBLISH", "someone-else:channel", "1"],
        # Key names outside its prefixes, other databases, other channels' names.
        ["SCAN", "0"],
        ["SCAN", "0", "MATCH", f"{PREFIX}:*"],
        ["RANDOMKEY"],
        ["SELECT", "1"],
        ["MOVE", f"{PREFIX}:key", "1"],
        ["COPY", f"{PREFIX}:key", f"{PREFIX}:copy", "DB", "1"],
        ["PUBSUB", "CHANNELS"],
        # Other applications' functions and scripts, which live server-wide.
        ["FUNCTION", "FLUSH"],
        ["FUNCTION", "LOAD", "#!lua name=theirs\nredis.register_function('f', function() return 1 end)"],
        ["FUNCTION", "LIST"],
        ["SCRIPT", "FLUSH"],
        ["SCRIPT", "KILL"],
        ["SCRIPT", "DEBUG", "SYNC"],
    ],
    ids=lambda command: " ".join(command[:2]),
)
def test_the_acl_user_is_refused_what_redstep_never_needs(
    acl_server: RedisServer, command: list[str]
) -> None:
    client = redis.Redis.from_url(acl_server.url)
    try:
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)
        assert client.ping()  # refused, and the server is still up
    finally:
        client.close()


def test_dead_letters_and_the_doctor_work_as_the_acl_user_that_may_not_scan(
    acl_server: RedisServer, cli_session: CliSession
) -> None:
    cli_session.env = redstep_env(acl_server.url)
    settings = Settings(
        redis_url=acl_server.url, prefix=PREFIX, visibility_timeout_seconds=0.05, max_receive_count=2
    )
    client = redis.Redis.from_url(acl_server.url)
    (message_id,) = send_messages(client, settings, settings.source_queue, [{"n": 1}])
    careless = EventSourceMapping(client, settings, "careless")  # receives, never acknowledges

    def worn_out() -> bool:
        careless.poll()
        return client.xlen(Keys(PREFIX).dead_letters(settings.source_queue)) == 1

    wait_until(worn_out, 30, "the message in the dead-letter queue", interval=0.06)
    Client(client, settings).register_machine("One", one_task_machine())
    Client(client, settings).start_execution("One", {}, name="running")
    client.zadd(Keys(PREFIX).executions, {"ghost": 1.0})  # an index entry naming no execution
    client.close()

    listed = cli_session.run("dlq", "list", "--json")
    doctor = cli_session.run("doctor", "--json")

    assert listed.returncode == 0, listed.stderr
    assert [letter["message_id"] for letter in json.loads(listed.stdout)] == [message_id]
    # Without SCAN the doctor reads what the indexes list, and says it looked no further.
    assert doctor.returncode == 1, doctor.stderr
    report = json.loads(doctor.stdout)
    assert (report["executions"], report["running"]) == (1, 1)
    found = {
        (problem["subject"], problem["invariant"], problem["severity"]) for problem in report["problems"]
    }
    assert found == {
        ("ghost", "index-without-execution", "error"),
        ("SCAN", "unlisted-keys-checked", "warning"),
    }


def test_a_url_naming_another_database_is_refused_to_the_acl_user(acl_server: RedisServer) -> None:
    # Redis's ACL cannot allow one database and not the others, so the app's user stays in 0.
    client = redis.Redis.from_url(acl_server.url.removesuffix("/0") + "/1")
    try:
        with pytest.raises(redis.exceptions.NoPermissionError, match="'select'"):
            client.ping()
    finally:
        client.close()


def test_the_default_user_is_switched_off_when_an_acl_user_is_configured(acl_server: RedisServer) -> None:
    client = redis.Redis(port=acl_server.port, socket_connect_timeout=2)
    try:
        with pytest.raises(redis.exceptions.AuthenticationError):
            client.ping()
    finally:
        client.close()


@pytest.mark.timeout(180)
def test_the_pipeline_runs_over_tls_with_the_server_verified_against_its_ca(
    tls_server: RedisServer, cli_session: CliSession
) -> None:
    assert tls_server.url.startswith("rediss://")
    cli_session.env = redstep_env(tls_server.url)

    run_demo_pipeline(cli_session)

    assert f"rediss://127.0.0.1:{tls_server.port}/0?ssl_ca_certs=" in cli_session.everything_printed()


def test_a_client_that_does_not_trust_the_ca_cannot_connect_over_tls(tls_server: RedisServer) -> None:
    client = redis.Redis.from_url(f"rediss://127.0.0.1:{tls_server.port}/0", socket_connect_timeout=2)
    try:
        with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            client.ping()
    finally:
        client.close()


def test_a_plain_text_client_cannot_talk_to_a_tls_only_server(tls_server: RedisServer) -> None:
    client = redis.Redis(port=tls_server.port, socket_connect_timeout=2, socket_timeout=2)
    try:
        with pytest.raises((redis.ConnectionError, redis.TimeoutError)):
            client.ping()
    finally:
        client.close()


def test_check_passes_over_tls_as_a_user_with_a_password(
    tls_server: RedisServer, cli_session: CliSession
) -> None:
    admin = redis.Redis.from_url(tls_server.url)
    admin.execute_command("ACL", "SETUSER", ACL_USER, "on", f">{ACL_PASSWORD}", "~*", "&*", "+@all")
    admin.close()
    tls_server.username, tls_server.password = ACL_USER, ACL_PASSWORD
    cli_session.env = redstep_env(tls_server.url)
    cli_session.start("orchestrator")

    deadline = time.monotonic() + 60
    # check passes once the orchestrator's first heartbeat is in.
    while (result := cli_session.run("check")).returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.2)

    assert result.returncode == 0, result.stderr
    assert f"rediss://{ACL_USER}:***@127.0.0.1:{tls_server.port}/0" in result.stderr
    cli_session.stop()
    assert_secret_absent(cli_session.everything_printed(), ACL_PASSWORD)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://127.0.0.1:6380/0", "redis://127.0.0.1:6380/0"),
        ("redis://:hunter2@redis:6379/0", "redis://:***@redis:6379/0"),
        ("redis://redstep:hunter2@redis:6379/0", "redis://redstep:***@redis:6379/0"),
        ("redis://redstep@redis:6379/0", "redis://redstep@redis:6379/0"),
        ("rediss://:hunter2@redis.example.com:6380/1", "rediss://:***@redis.example.com:6380/1"),
        (
            "rediss://app:hunter2@redis.example.com:6380/0?ssl_ca_certs=/etc/ssl/ca.pem&ssl_cert_reqs=required",
            "rediss://app:***@redis.example.com:6380/0?ssl_ca_certs=/etc/ssl/ca.pem&ssl_cert_reqs=required",
        ),
        (f"redis://:{quote(PASSWORD, safe='')}@127.0.0.1:6380/0", "redis://:***@127.0.0.1:6380/0"),
        (f"redis://user%40corp:{quote(PASSWORD, safe='')}@h:1/0", "redis://user%40corp:***@h:1/0"),
        ("redis://:p%40ss@redis/0", "redis://:***@redis/0"),
        ("redis://:p@ss@redis:6379/0", "redis://:***@redis:6379/0"),
        ("redis://:hunter2@[::1]:6379/0", "redis://:***@[::1]:6379/0"),
        ("redis://redis:6379/0?password=hunter2", "redis://redis:6379/0?password=***"),
        (
            "rediss://redis:6380/0?ssl_keyfile=/k.pem&ssl_password=hunter2&ssl_certfile=/c.pem",
            "rediss://redis:6380/0?ssl_keyfile=/k.pem&ssl_password=***&ssl_certfile=/c.pem",
        ),
    ],
    ids=[
        "no password",
        "password",
        "user and password",
        "user without password",
        "rediss",
        "rediss with CA options",
        "every special character, encoded",
        "encoded user name",
        "no port",
        "unencoded at-sign",
        "IPv6 host",
        "password in the query",
        "client key password in the query",
    ],
)
def test_masked_url_hides_the_password_and_keeps_the_rest(url: str, masked: str) -> None:
    assert masked_url(url) == masked


def _run_cli_at_once(commands: list[list[str]], env: dict[str, str]) -> list[str]:
    """What each ``redstep ARGS`` printed, all run at once; services still running at SERVICE_SECONDS stop.

    At once, so that a test waits out the services' window once, not once per command.
    """
    processes = [
        subprocess.Popen(
            redstep_command(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for args in commands
    ]
    deadline = time.monotonic() + SERVICE_SECONDS
    return [_output_by(process, deadline) for process in processes]


def _output_by(process: subprocess.Popen[str], deadline: float) -> str:
    try:
        output, _ = process.communicate(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        # A service may keep retrying a Redis it cannot reach; what it said so far is what counts.
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    return output


COMMANDS = [
    ["status"],
    ["check"],
    ["executions", "list"],
    [
        "produce",
        *["--name", "Ashgrave", "--description", "d", "--family", "red", "--city", "c"],
        *["--state", "s", "--country", "u", "--neighborhood", "n"],
    ],
    ["subscribe", "--count", "1"],
    ["orchestrator"],
    ["worker", "--burst"],
]


def _assert_every_command_names_the_address_but_not_the_secret(url: str, port: int, secret: str) -> None:
    env = redstep_env(url)
    problems = []
    for args, output in zip(COMMANDS, _run_cli_at_once(COMMANDS, env), strict=True):
        try:
            assert f"127.0.0.1:{port}" in output, "the address is not named"
            assert_secret_absent(output, secret)
        except AssertionError as error:
            problems.append(f"redstep {args[0]}: {error}\n{output}")
    assert not problems, "\n\n".join(problems)


@pytest.mark.timeout(300)
def test_every_command_names_an_unreachable_redis_without_its_password() -> None:
    port = free_port()
    url = f"redis://redstep:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/0"
    _assert_every_command_names_the_address_but_not_the_secret(url, port, PASSWORD)


@pytest.mark.timeout(300)
def test_every_command_names_the_redis_that_refused_a_wrong_password_without_showing_it(
    password_server: RedisServer,
) -> None:
    wrong = "Yw7:not-the@password/"
    url = f"redis://:{quote(wrong, safe='')}@127.0.0.1:{password_server.port}/0"
    _assert_every_command_names_the_address_but_not_the_secret(url, password_server.port, wrong)
