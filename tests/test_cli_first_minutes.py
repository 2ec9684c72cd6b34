"""README's "Run it" block, run literally: ``redstep up`` in one terminal, the rest in another.

The second terminal has no ``REDIS_URL``: it finds the stack through the runtime file that
``up`` writes. The runtime directory is the test's own, so a user's running ``up`` is never
seen, and the commands are the README's own lines, read from README.md.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from orchestrator.runtime.keys import Keys
from producer.cli.discovery import DEFAULT_URL, runtime_file
from tests.test_cli_stack import wait_for

ROOT = Path(__file__).resolve().parents[1]
INSTALL = "pip install -e '.[test]'"  # how this suite's environment was made, as README says


def readme_blocks(heading: str) -> list[str]:
    """The ``sh`` code blocks of README.md's section ``heading``, in order."""
    text = (ROOT / "README.md").read_text()
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def terminal_env(tmp_path: Path) -> dict[str, str]:
    """A new terminal of the same user: nothing names a Redis; this environment's ``redstep`` on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "REDSTEP_"))}
    env["REDSTEP_RUNTIME_DIR"] = str(tmp_path / "run")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    # The API on any free port rather than 8083: other tests' stacks run on this machine too.
    env["REDSTEP_API_PORT"] = "0"
    return env


class Terminal:
    """A shell in a process group of its own, its output in files, stopped as a terminal's close would."""

    def __init__(self, env: dict[str, str], out: Path, command: list[str] | None = None) -> None:
        self.out, self.err = out.with_suffix(".out"), out.with_suffix(".err")
        with self.out.open("w") as stdout, self.err.open("w") as stderr:
            self.process = subprocess.Popen(
                command or ["bash"],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=stdout,
                stderr=stderr,
                text=True,
                start_new_session=True,
            )

    def type(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def output(self) -> str:
        return self.out.read_text()

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def close(self) -> None:
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.close()
        terminal.signal(signal.SIGKILL)  # anything the shell left behind in its group


def test_readme_run_it_block_works_as_written_from_a_second_terminal(
    tmp_path: Path, terminals: list[Terminal]
) -> None:
    start, follow = readme_blocks("Run it")[:2]
    install, _, up_command = start.strip().partition(" && ")
    assert install == INSTALL
    env = terminal_env(tmp_path)
    assert Path(sys.executable).with_name("redstep").exists(), "pip install -e must put `redstep` on PATH"

    # Terminal 1: `redstep up --workers 2`, until it says what to run next.
    first = Terminal(env, tmp_path / "terminal1", ["bash", "-c", up_command])
    terminals.append(first)
    wait_for(lambda: "next:" in first.output() or first.process.poll() is not None, 90, "up to be ready")
    assert first.process.poll() is None, first.err.read_text()
    url = re.search(r"^redis\s+(\S+)", first.output(), re.M).group(1)  # type: ignore[union-attr]
    assert f"export REDIS_URL={url}" in first.output()

    # Terminal 2, no REDIS_URL: it finds that stack (checked before anything is written anywhere).
    checked = subprocess.run(["redstep", "check"], env=env, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr.strip().endswith(f"({url})"), checked.stderr

    second = Terminal(env, tmp_path / "terminal2")
    terminals.append(second)
    stack = redis.Redis.from_url(url)
    channel = Keys("redstep").topic("dragon-notifications")
    for line in follow.strip().splitlines():
        second.type(line)
        if line.startswith("redstep subscribe"):
            # A person types the next line once the first has started; so does this test.
            wait_for(lambda: stack.pubsub_numsub(channel)[0][1] >= 1, 60, "the subscriber to listen")

    def notifications() -> list[str] | None:
        lines = [
            line
            for line in second.output().splitlines()
            if "Record inserted" in line or "Already exists" in line
        ]
        return lines if len(lines) >= 25 else None

    lines = wait_for(notifications, 120, "25 notifications in terminal 2")
    assert len(lines) == 25
    assert Counter(
        "Record inserted" if "Record inserted" in line else "Already exists" for line in lines
    ) == {
        "Record inserted": 20,
        "Already exists": 5,
    }
    assert "enqueued 25 record(s) on queue dragons" in second.output()
    assert DEFAULT_URL not in second.err.read_text()
    stack.close()

    # Ctrl-C in terminal 1 stops everything and takes the runtime file away.
    published = runtime_file("redstep", env)
    assert published.exists()
    first.signal(signal.SIGINT)
    assert first.process.wait(timeout=60) == 0, first.err.read_text()
    assert not published.exists()


def test_two_ups_with_different_prefixes_run_side_by_side_and_a_third_is_refused(
    tmp_path: Path, terminals: list[Terminal]
) -> None:
    env = terminal_env(tmp_path)
    ups = {}
    for prefix in ("blue", "green"):
        terminal = Terminal(
            {**env, "REDSTEP_PREFIX": prefix}, tmp_path / prefix, ["redstep", "up", "--workers", "1"]
        )
        terminals.append(terminal)
        ups[prefix] = terminal
    urls = {}
    for prefix, terminal in ups.items():
        wait_for(lambda t=terminal: "next:" in t.output() or t.process.poll() is not None, 90, f"up {prefix}")
        assert terminal.process.poll() is None, terminal.err.read_text()
        urls[prefix] = re.search(r"^redis\s+(\S+)", terminal.output(), re.M).group(1)  # type: ignore[union-attr]
        assert f"REDSTEP_PREFIX={prefix}" in terminal.output()
    assert urls["blue"] != urls["green"]

    def check(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["redstep", "check"], env={**env, **extra}, capture_output=True, text=True, timeout=60
        )

    for prefix, url in urls.items():
        result = check({"REDSTEP_PREFIX": prefix})
        assert result.returncode == 0, result.stderr
        assert result.stderr.strip().endswith(f"({url})")
    ambiguous = check({})
    assert ambiguous.returncode == 1
    assert ambiguous.stderr.strip() == (
        "several redstep up stacks are running (prefixes blue, green); choose one with REDSTEP_PREFIX"
        " or --prefix, or set REDIS_URL"
    )

    again = subprocess.run(
        ["redstep", "up"], env={**env, "REDSTEP_PREFIX": "blue"}, capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 1
    assert again.stderr.strip().startswith(
        f"a redstep up for prefix blue is already running (pid {ups['blue'].process.pid}, {urls['blue']})"
    )
