"""Fixtures shared by the whole suite: a private redis-server on a free port, never 6379's data.

Also the suite's markers, given centrally (see pyproject's ``markers``): ``stack`` for a test
that needs a redis-server or real redstep processes, ``fault`` for one that kills processes
on purpose (every ``test_fault_*`` file); ``slow`` is set by the compose test itself. And no
process a test module started outlives it: one left running fails the module's last test.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from orchestrator.runtime.server import RedisServer
from orchestrator.settings import Settings
from tests.processes import descendants, kill_now
from tests.retention_fixtures import HOUR, Clock

# Fixtures that start a redis-server or redstep processes; a test using one is a `stack` test.
STACK_FIXTURES = {"redis_server", "subprocess_env"}
# Files whose tests start redis-servers of their own, without asking for those fixtures.
STACK_FILES = {"test_access.py", "test_cli_stack.py"}

# Processes meant to outlive a module: the session's redis-server.
_SESSION_PIDS: set[int] = set()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        name = Path(str(item.fspath)).name
        if name.startswith("test_fault_"):
            item.add_marker(pytest.mark.fault)
            item.add_marker(pytest.mark.stack)
        elif STACK_FIXTURES & set(getattr(item, "fixturenames", ())) or name in STACK_FILES:
            item.add_marker(pytest.mark.stack)


@pytest.fixture(scope="module", autouse=True)
def no_process_outlives_its_module(request: pytest.FixtureRequest) -> Iterator[None]:
    """SIGKILL what the module's tests and fixtures left running, and fail naming it."""
    before = set(descendants(os.getpid()))
    yield
    left = {
        pid: command
        for pid, command in descendants(os.getpid()).items()
        if pid not in before and pid not in _SESSION_PIDS
    }
    for pid in left:
        kill_now(pid)
    if left:
        listed = "\n".join(f"  pid {pid}: {command}" for pid, command in left.items())
        pytest.fail(f"{request.node.name} left {len(left)} process(es) running (now killed):\n{listed}")


@pytest.fixture(autouse=True)
def signal_handlers_put_back() -> Iterator[None]:
    """Put back the SIGINT and SIGTERM handlers a test leaves changed.

    An RQ worker run in the test process (``work(burst=True)``) installs its own and keeps
    them, so without this a later test's outcome would depend on which tests ran before it.
    """
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        if signal.getsignal(sig) is not handler:
            signal.signal(sig, handler)


@pytest.fixture(scope="session", autouse=True)
def private_runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep every ``redstep up`` of the suite, and every lookup of one, out of the user's runtime dir."""
    previous = os.environ.get("REDSTEP_RUNTIME_DIR")
    os.environ["REDSTEP_RUNTIME_DIR"] = str(tmp_path_factory.mktemp("runtime"))
    yield
    if previous is None:
        os.environ.pop("REDSTEP_RUNTIME_DIR", None)
    else:
        os.environ["REDSTEP_RUNTIME_DIR"] = previous


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the test session, started on a free port."""
    with RedisServer() as server:
        if server.process is not None:
            _SESSION_PIDS.add(server.process.pid)
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of an empty database on the session's server (flushed before each test)."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def settings(redis_url: str) -> Settings:
    """Settings pointed at the test server, with timing knobs short enough for tests."""
    return Settings(
        redis_url=redis_url,
        prefix="t",
        visibility_timeout_seconds=2.0,
        poll_interval_seconds=0.01,
    )


@pytest.fixture
def subprocess_env(redis_url: str) -> dict[str, str]:
    """The environment for a redstep subprocess that talks to the test server."""
    return {**os.environ, "REDIS_URL": redis_url, "REDSTEP_PREFIX": "t", "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def clock() -> Clock:
    """A clock a test moves on by hand (``clock.offset``), for timers and retention."""
    return Clock()


@pytest.fixture
def hour_retention(settings: Settings) -> Settings:
    """The test settings, keeping finished executions an hour."""
    return settings.model_copy(update={"retention_seconds": HOUR})
