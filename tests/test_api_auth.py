"""Every request to redstep serve is checked with SigV4; serve refuses to run open by accident."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from orchestrator.runtime.server import RedisServer
from tests.api_fixtures import (
    ACCOUNT,
    SECRET_ACCESS_KEY,
    ApiStack,
    api_env,
    pass_machine,
    role_arn,
    serve,
    serve_only,
    signed_post,
    unique,
)
from tests.chaos import stop

__all__ = ["serve_only"]  # fixtures, used by name


def refused_code(call: Any) -> str:
    with pytest.raises(ClientError) as refused:
        call()
    return str(refused.value.response["Error"]["Code"])


def machine_exists(client: Any, name: str) -> bool:
    listed = client.list_state_machines()["stateMachines"]
    return name in {machine["name"] for machine in listed}


def test_a_wrong_secret_is_refused_and_nothing_is_written(serve_only: ApiStack) -> None:
    impostor = serve_only.client(aws_secret_access_key="wrong-secret")
    name = unique("impostor")

    code = refused_code(
        lambda: impostor.create_state_machine(name=name, definition=pass_machine(), roleArn=role_arn())
    )

    assert code == "InvalidSignatureException"
    assert not machine_exists(serve_only.client(), name)


def test_an_unknown_access_key_is_refused_as_an_unrecognized_client(serve_only: ApiStack) -> None:
    stranger = serve_only.client(aws_access_key_id="AKIDNOBODYKNOWS")
    assert refused_code(stranger.list_state_machines) == "UnrecognizedClientException"


def test_a_body_changed_after_signing_is_refused_and_nothing_is_written(serve_only: ApiStack) -> None:
    client = serve_only.client()
    name = unique("tampered")

    def tamper(request: Any, **_: Any) -> None:
        request.body = request.body.replace(b"test-role", b"evil-role")

    client.meta.events.register("before-send.states.CreateStateMachine", tamper)
    code = refused_code(
        lambda: client.create_state_machine(name=name, definition=pass_machine(), roleArn=role_arn())
    )

    assert code == "InvalidSignatureException"
    assert not machine_exists(serve_only.client(), name)


def test_a_stale_x_amz_date_is_refused_as_expired(serve_only: ApiStack) -> None:
    twenty_minutes_ago = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=20)
    client = serve_only.client()
    stale = mock.patch("botocore.auth.get_current_datetime", return_value=twenty_minutes_ago)
    with stale, pytest.raises(ClientError) as refused:
        client.list_state_machines()
    assert refused.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert refused.value.response["Error"]["Message"].startswith("Signature expired")


def test_a_client_of_another_region_is_refused_naming_the_region_served(serve_only: ApiStack) -> None:
    with pytest.raises(ClientError) as refused:
        serve_only.client(region_name="eu-west-1").list_state_machines()
    assert refused.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert "us-east-1" in refused.value.response["Error"]["Message"]


def test_any_host_header_is_accepted_and_every_answer_carries_a_request_id(serve_only: ApiStack) -> None:
    answer = signed_post(serve_only.url, "ListStateMachines", {}, host="states.us-east-1.amazonaws.com")
    assert answer.status == 200 and "stateMachines" in answer.body
    assert answer.headers["x-amzn-requestid"]

    refused = signed_post(serve_only.url, "ListStateMachines", {}, secret="wrong")
    assert refused.status == 400 and refused.code == "InvalidSignatureException"
    assert refused.headers["x-amzn-requestid"]


def serve_exit(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "producer.cli", "serve", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_refuses_to_start_without_credentials(redis_server: RedisServer) -> None:
    env = api_env(redis_server.url, unique("nocreds"))
    del env["REDSTEP_ACCESS_KEY_ID"], env["REDSTEP_SECRET_ACCESS_KEY"]

    ended = serve_exit(env, "--port", "0")

    assert ended.returncode == 2
    assert "REDSTEP_ACCESS_KEY_ID" in ended.stderr and "--no-auth" in ended.stderr


def test_half_a_key_pair_is_refused_without_showing_the_secret(redis_server: RedisServer) -> None:
    env = api_env(redis_server.url, unique("half"))
    del env["REDSTEP_ACCESS_KEY_ID"]

    ended = serve_exit(env, "--port", "0")

    assert ended.returncode == 2 and "both" in ended.stderr
    assert SECRET_ACCESS_KEY not in ended.stderr + ended.stdout


def test_no_auth_is_refused_off_loopback(redis_server: RedisServer) -> None:
    ended = serve_exit(
        api_env(redis_server.url, unique("open")), "--no-auth", "--host", "0.0.0.0", "--port", "0"
    )
    assert ended.returncode == 2
    assert "loopback" in ended.stderr


def test_no_auth_on_loopback_serves_unsigned_requests(redis_server: RedisServer, tmp_path: Path) -> None:
    env = api_env(redis_server.url, unique("open"))
    del env["REDSTEP_ACCESS_KEY_ID"], env["REDSTEP_SECRET_ACCESS_KEY"]
    process, url = serve(env, tmp_path, "--no-auth")
    try:
        unsigned = boto3.client(
            "stepfunctions",
            endpoint_url=url,
            region_name="us-east-1",
            config=Config(signature_version=UNSIGNED),
        )
        assert unsigned.list_state_machines()["stateMachines"] == []
    finally:
        stop(process)


def test_each_pair_of_a_credentials_file_is_let_in(redis_server: RedisServer, tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[alice]\naws_access_key_id = AKIDALICE\naws_secret_access_key = alice-secret\n"
        "[bob]\naws_access_key_id = AKIDBOB\naws_secret_access_key = bob-secret\n"
    )
    env = api_env(redis_server.url, unique("file"))
    del env["REDSTEP_ACCESS_KEY_ID"], env["REDSTEP_SECRET_ACCESS_KEY"]
    env["REDSTEP_CREDENTIALS_FILE"] = str(credentials)
    process, url = serve(env, tmp_path)
    try:
        for key_id, secret in (("AKIDALICE", "alice-secret"), ("AKIDBOB", "bob-secret")):
            client = boto3.client(
                "stepfunctions",
                endpoint_url=url,
                region_name="us-east-1",
                aws_access_key_id=key_id,
                aws_secret_access_key=secret,
            )
            assert "stateMachines" in client.list_state_machines()
        mallory = boto3.client(
            "stepfunctions",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="AKIDALICE",
            aws_secret_access_key="bob-secret",
        )
        assert refused_code(mallory.list_state_machines) == "InvalidSignatureException"
    finally:
        stop(process)


def test_no_secret_appears_in_what_serve_logs_even_at_debug(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    env = {**api_env(redis_server.url, unique("quiet")), "REDSTEP_LOG_LEVEL": "DEBUG"}
    process, url = serve(env, tmp_path)
    try:
        good = boto3.client(
            "stepfunctions",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id=env["REDSTEP_ACCESS_KEY_ID"],
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )
        arn = good.create_state_machine(name=unique("m"), definition=pass_machine(), roleArn=role_arn())
        assert arn["stateMachineArn"].startswith(f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:")
        signed_post(url, "ListStateMachines", {}, secret="wrong")
        signed_post(url, "ListStateMachines", "{not json")
    finally:
        stop(process)
    logged = "".join(log.read_text() for log in tmp_path.glob("*.log"))
    assert "redstep serve: http://127.0.0.1" in logged
    assert SECRET_ACCESS_KEY not in logged and json.dumps(SECRET_ACCESS_KEY)[1:-1] not in logged


def test_two_serve_processes_on_one_redis_see_the_same_machines_and_take_each_others_tokens(
    serve_only: ApiStack, tmp_path: Path
) -> None:
    process, url = serve(serve_only.env, tmp_path)
    try:
        first, second = serve_only.client(), serve_only.client(endpoint_url=url)
        names = {unique("shared") for _ in range(3)}
        for name in names:
            first.create_state_machine(name=name, definition=pass_machine(), roleArn=role_arn())

        page = first.list_state_machines(maxResults=1)
        rest = second.list_state_machines(nextToken=page["nextToken"], maxResults=1000)

        listed = [m["name"] for m in page["stateMachines"] + rest["stateMachines"]]
        assert names <= set(listed) and len(listed) == len(set(listed))
    finally:
        stop(process)
