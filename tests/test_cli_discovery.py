"""How a command finds its Redis when ``REDIS_URL`` is unset: a running ``redstep up``, else the default.

The resolution is tested in-process against runtime files written as ``up`` writes them; the
one-line refusals run the real CLI. Nothing here connects to the default address: a command that
would fall back to the default runs in a network namespace of its own, where nothing listens.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from producer.cli import discovery
from producer.cli.discovery import DEFAULT_URL, DiscoveryError, resolve, runtime_file, write_runtime_file
from tests.test_cli_stack import wait_for


@pytest.fixture
def runtime_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose runtime directory is private to the test and names no Redis."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "REDSTEP_"))}
    env["REDSTEP_RUNTIME_DIR"] = str(tmp_path / "run")
    return env


@pytest.fixture
def live_redstep() -> Iterator[int]:
    """The pid of a live process whose command line says redstep, as a running ``up``'s does."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "redstep", "up"])
    # Until it has exec'd, the child's command line is still its parent's.
    wait_for(lambda: b"redstep" in Path(f"/proc/{process.pid}/cmdline").read_bytes(), 30, "the child to exec")
    yield process.pid
    process.kill()
    process.wait()


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def write_file(env: dict[str, str], prefix: str, url: str, pid: int) -> Path:
    path = runtime_file(prefix, env)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"url": url, "prefix": prefix, "pid": pid}))
    return path


def test_a_running_up_is_found_and_its_prefix_comes_with_it(runtime_env: dict, live_redstep: int) -> None:
    write_file(runtime_env, "redstep", "redis://127.0.0.1:1111/0", live_redstep)
    found = resolve(None, None, runtime_env)
    assert (found.url, found.prefix, found.note) == ("redis://127.0.0.1:1111/0", "redstep", None)

    # The only running up is found even when its prefix is not the default one.
    runtime_file("redstep", runtime_env).unlink()
    write_file(runtime_env, "blue", "redis://127.0.0.1:2222/0", live_redstep)
    found = resolve(None, None, runtime_env)
    assert (found.url, found.prefix) == ("redis://127.0.0.1:2222/0", "blue")


def test_an_explicit_url_always_wins(runtime_env: dict, live_redstep: int) -> None:
    write_file(runtime_env, "redstep", "redis://127.0.0.1:1111/0", live_redstep)
    assert resolve("redis://elsewhere:6380/2", None, runtime_env).url == "redis://elsewhere:6380/2"


def test_two_ups_with_different_prefixes_do_not_cross(runtime_env: dict, live_redstep: int) -> None:
    write_file(runtime_env, "blue", "redis://127.0.0.1:2222/0", live_redstep)
    write_file(runtime_env, "green", "redis://127.0.0.1:3333/0", live_redstep)
    assert resolve(None, "blue", runtime_env).url == "redis://127.0.0.1:2222/0"
    assert resolve(None, "green", runtime_env).url == "redis://127.0.0.1:3333/0"
    with pytest.raises(
        DiscoveryError, match=r"several redstep up stacks are running \(prefixes blue, green\)"
    ):
        resolve(None, None, runtime_env)
    # A prefix nobody serves is not quietly given another stack's Redis.
    assert resolve(None, "red", runtime_env).url == DEFAULT_URL


def test_with_nothing_running_the_default_is_used_and_said(runtime_env: dict) -> None:
    found = resolve(None, None, runtime_env)
    assert found.url == DEFAULT_URL
    assert found.note == f"no REDIS_URL and no running redstep up; using {DEFAULT_URL}"


def test_a_stale_file_is_ignored_with_one_clear_line(runtime_env: dict) -> None:
    pid = dead_pid()
    path = write_file(runtime_env, "redstep", "redis://127.0.0.1:1111/0", pid)
    found = resolve(None, None, runtime_env)
    assert found.url == DEFAULT_URL
    assert found.note == (
        f"ignoring {path}: the redstep up that wrote it (pid {pid}) is gone; using {DEFAULT_URL}"
    )
    assert path.exists(), "reading must write nothing, removal included"


def test_a_live_pid_that_is_not_redstep_counts_as_stale(runtime_env: dict) -> None:
    # Pids are reused: a file naming a live process that is not redstep is stale all the same.
    other = subprocess.Popen(["sleep", "120"])
    try:
        write_file(runtime_env, "redstep", "redis://127.0.0.1:1111/0", other.pid)
        assert resolve(None, None, runtime_env).source == "default"
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[1, 2]",
        '{"url": "redis://x", "prefix": "redstep"}',
        '{"url": 1, "prefix": "redstep", "pid": 1}',
    ],
)
def test_a_file_that_is_not_ours_is_refused(runtime_env: dict, content: str) -> None:
    path = runtime_file("redstep", runtime_env)
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(DiscoveryError, match=f"{path} is not a redstep runtime file; remove it"):
        resolve(None, None, runtime_env)


def test_a_file_of_another_user_is_refused(runtime_env: dict, live_redstep: int) -> None:
    path = write_file(runtime_env, "redstep", "redis://attacker:6379/0", live_redstep)
    if os.getuid() != 0:
        pytest.skip("giving a file to another user needs root")
    os.chown(path, 65534, 65534)
    with pytest.raises(DiscoveryError, match="belongs to uid 65534, not to you"):
        resolve(None, None, runtime_env)


def test_a_directory_in_the_files_place_is_refused(runtime_env: dict) -> None:
    runtime_file("redstep", runtime_env).mkdir(parents=True)
    with pytest.raises(DiscoveryError, match="is not a regular file"):
        resolve(None, None, runtime_env)


def test_the_file_up_writes_is_private_and_removed_only_by_its_writer(runtime_env: dict) -> None:
    path = write_runtime_file("redis://:secret@127.0.0.1:1111/0", "redstep", runtime_env)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert json.loads(path.read_text())["pid"] == os.getpid()
    path.write_text(json.dumps({"url": "redis://x", "prefix": "redstep", "pid": os.getpid() + 1}))
    discovery.remove_runtime_file(path)
    assert path.exists(), "another up's file stays"
    write_runtime_file("redis://127.0.0.1:1111/0", "redstep", runtime_env)
    discovery.remove_runtime_file(path)
    assert not path.exists()


def redstep(env: dict[str, str], *args: str, isolated: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "producer.cli", *args]
    if isolated:
        # A network namespace with only a loopback, so the default address is nobody's.
        command = ["unshare", "--net", "sh", "-c", 'ip link set lo up 2>/dev/null; exec "$@"', "sh", *command]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def needs_network_namespace() -> None:
    if shutil.which("unshare") is None or subprocess.run(["unshare", "--net", "true"]).returncode != 0:
        pytest.skip("needs `unshare --net` to keep the default Redis address out of reach")


@pytest.mark.parametrize(
    "command", [["status"], ["produce", "producer/data/demo25.json"], ["executions", "list"]]
)
def test_with_nothing_running_a_command_names_the_default_and_fails_in_one_line(
    runtime_env: dict, command: list[str]
) -> None:
    needs_network_namespace()
    result = redstep(runtime_env, *command, isolated=True)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"redstep: no REDIS_URL and no running redstep up; using {DEFAULT_URL}"
    assert len(lines) == 2, result.stderr
    assert lines[1].startswith(f"cannot reach Redis at {DEFAULT_URL}: ")
    assert lines[1].endswith("; start `redstep up`, or set REDIS_URL to your Redis")
    assert "Traceback" not in result.stderr


def test_a_stale_file_and_nothing_on_the_default_is_two_clear_lines(runtime_env: dict) -> None:
    needs_network_namespace()
    path = write_file(runtime_env, "redstep", "redis://127.0.0.1:1111/0", dead_pid())
    result = redstep(runtime_env, "status", isolated=True)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith(f"redstep: ignoring {path}: the redstep up that wrote it (pid ")
    assert lines[1].startswith(f"cannot reach Redis at {DEFAULT_URL}")


def test_a_foreign_file_stops_a_command_before_it_connects(runtime_env: dict) -> None:
    path = runtime_file("redstep", runtime_env)
    path.parent.mkdir(parents=True)
    path.write_text("garbage")
    for command in (["status"], ["produce", "producer/data/demo25.json"], ["send-task-heartbeat", "x:1"]):
        result = redstep(runtime_env, *command)
        assert result.returncode == 1, result
        assert (
            result.stderr.strip()
            == f"{path} is not a redstep runtime file; remove it (redstep up writes it anew)"
        )
    assert path.read_text() == "garbage"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis://127.0.0.1:99999/0", "Port out of range 0-65535"),
        ("redis://127.0.0.1:1/0?socket_timeout=abc", "Invalid value for 'socket_timeout'"),
        ("redis://host:notaport/0", "Port could not be cast to integer value"),
    ],
)
def test_a_bad_redis_url_is_one_line(runtime_env: dict, url: str, problem: str) -> None:
    result = redstep({**runtime_env, "REDIS_URL": url}, "status")
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"invalid Redis URL {url}: {problem}")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_tls_url_pointed_at_a_plain_server_fails_within_seconds(runtime_env: dict, redis_url: str) -> None:
    tls_url = redis_url.replace("redis://", "rediss://", 1)
    commands = (["status"], ["produce", "producer/data/demo25.json"], ["subscribe"])
    # At once: each waits out its connect timeout, and the test need not wait them out one by one.
    with ThreadPoolExecutor(len(commands)) as pool:
        results = list(
            pool.map(lambda command: redstep({**runtime_env, "REDIS_URL": tls_url}, *command), commands)
        )
    for result in results:
        assert result.returncode == 1, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert tls_url in lines[0]
        assert "Timeout connecting to server" in lines[0]
