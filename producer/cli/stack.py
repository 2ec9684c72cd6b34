"""``redstep up``: Redis (the user's, or a private one), an orchestrator, N workers and the API.

The children run in their own sessions, so a Ctrl-C in the terminal reaches only this
supervisor, which then stops them in order: first the workers, the orchestrator and the API
(each finishes what it holds), then the private redis-server they were talking to. On Linux each
child also asks the kernel for SIGTERM when the supervisor dies, so a killed ``up`` leaves no
orphans behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from orchestrator.runtime.server import RedisServer

log = logging.getLogger("redstep.up")

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: have the kernel send SIGTERM when the parent goes away."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def redstep_command(*args: str) -> list[str]:
    """The command line that runs ``redstep ARGS`` with this interpreter, installed or not."""
    return [sys.executable, "-m", "producer.cli", *args]


@dataclass
class Child:
    """One supervised process: what to run, and the running process when there is one.

    ``env`` is added to the stack's environment for this child alone (the API's key pair:
    an environment is readable only by its owner, a command line by everyone).
    """

    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    quick_exits: int = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None


@dataclass
class Stack:
    """The processes of ``redstep up`` and how to start, watch and stop them.

    Attributes:
        workers: how many worker processes to run.
        env: the environment of every child (``REDIS_URL`` is set here once Redis is known).
        redis_url: the Redis to use; ``None`` starts a private redis-server.
        grace_seconds: how long a child may take to stop after SIGTERM before it is killed.
        restart_backoff_seconds: wait before restarting a child that exited on its own.
        max_quick_exits: give up on a child that exits this many times in a row within
            ``quick_exit_seconds`` of starting (a bad configuration, not a crash).
        api_args: the arguments of ``redstep serve``; ``None`` starts no API.
        api_env: the environment only the API process gets, on top of ``env``.
    """

    workers: int = 1
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    redis_url: str | None = None
    grace_seconds: float = 30.0
    restart_backoff_seconds: float = 1.0
    max_quick_exits: int = 5
    quick_exit_seconds: float = 3.0
    worker_args: list[str] = field(default_factory=list)
    api_args: list[str] | None = None
    api_env: dict[str, str] = field(default_factory=dict)
    server: RedisServer | None = None
    children: list[Child] = field(default_factory=list)

    def start(self) -> None:
        """Start Redis when needed, then the orchestrator, the workers and the API."""
        if self.redis_url is None:
            # Its data lives in a temporary directory removed on stop, so persistence would buy nothing.
            self.server = RedisServer().start()
            self.redis_url = self.server.url
        self.env["REDIS_URL"] = self.redis_url
        self.children = [Child("orchestrator", redstep_command("orchestrator"))]
        for index in range(1, self.workers + 1):
            command = redstep_command("worker", "--name", f"up-{os.getpid()}-{index}", *self.worker_args)
            self.children.append(Child(f"worker-{index}", command))
        if self.api_args is not None:
            self.children.append(Child("api", redstep_command("serve", *self.api_args), self.api_env))
        for child in self.children:
            self._spawn(child)

    def _spawn(self, child: Child) -> None:
        child.process = subprocess.Popen(
            child.command, env={**self.env, **child.env}, start_new_session=True, preexec_fn=_die_with_parent
        )
        child.started_at = time.monotonic()
        log.debug("started %s (pid %s)", child.name, child.pid)

    def watch_once(self) -> str | None:
        """Restart any child that exited on its own; return why the stack must stop, or ``None``."""
        for child in self.children:
            assert child.process is not None
            code = child.process.poll()
            if code is None:
                continue
            lived = time.monotonic() - child.started_at
            child.quick_exits = child.quick_exits + 1 if lived < self.quick_exit_seconds else 0
            if child.quick_exits >= self.max_quick_exits:
                return f"{child.name} exited {child.quick_exits} times in a row on start (last code {code})"
            log.warning("%s (pid %s) exited with code %s; restarting it", child.name, child.pid, code)
            time.sleep(self.restart_backoff_seconds)
            self._spawn(child)
        return None

    def wait_ready(self, ready: Callable[[], bool], stop: threading.Event, timeout: float) -> str | None:
        """Watch the children until ``ready()`` holds or ``stop`` is set; return why not, or ``None``."""
        deadline = time.monotonic() + timeout
        while not stop.is_set() and not ready():
            problem = self.watch_once()
            if problem:
                return problem
            if time.monotonic() > deadline:
                return f"the stack was not ready within {timeout:g} s (no orchestrator heartbeat)"
            stop.wait(0.1)
        return None

    def run_until(self, stop: threading.Event, poll_seconds: float = 0.2) -> int:
        """Watch the children until ``stop`` is set (exit status 0) or one keeps failing (1)."""
        while not stop.wait(poll_seconds):
            problem = self.watch_once()
            if problem:
                log.error("%s; stopping the stack", problem)
                return 1
        return 0

    def stop(self) -> None:
        """SIGTERM every child, wait up to the grace period, SIGKILL what is left, then stop Redis."""
        running = [c for c in self.children if c.process and c.process.poll() is None]
        for child in running:
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + self.grace_seconds
        for child in running:
            assert child.process is not None
            try:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning(
                    "%s (pid %s) did not stop in %.0f s; killing it",
                    child.name,
                    child.pid,
                    self.grace_seconds,
                )
                child.process.kill()
                child.process.wait()
        if self.server:
            self.server.stop()
            self.server = None


def stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """Set ``stop`` on SIGINT and SIGTERM; return a function that restores the old handlers."""
    previous: Mapping[int, object] = {}

    def handle(signum: int, _frame: object) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    return restore
