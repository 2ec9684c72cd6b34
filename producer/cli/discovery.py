"""Which Redis a command talks to when nothing names one: the stack a running ``redstep up`` started.

``redstep up`` writes a small runtime file (its Redis URL, its pid, its key prefix) into a
directory of this user's and removes it on exit. A command run in another terminal with no
``REDIS_URL`` reads it, so README's "run ``up``, then ``produce`` in another terminal" works
as written. The file is per prefix, so two stacks with different prefixes never cross, and
the directory is per user (``$XDG_RUNTIME_DIR``, else ``~/.local/state``), so two users'
stacks never cross either. ``REDSTEP_RUNTIME_DIR`` moves it, which is how tests isolate it.

The order, first match wins: ``--redis-url`` / ``REDIS_URL`` / the ``REDSTEP_REDIS_*``
parts; a live ``up`` for the prefix (for the default prefix, the only live ``up`` of any
prefix); the conventional default ``redis://127.0.0.1:6379/0``, said once on stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PREFIX = "redstep"
MAX_FILE_BYTES = 64 * 1024


class DiscoveryError(Exception):
    """A runtime file that cannot be trusted or read; the message is the one line to print."""


@dataclass(frozen=True)
class RunningUp:
    """What a running ``redstep up`` wrote about its stack."""

    url: str
    prefix: str
    pid: int
    path: Path


class StaleRuntimeFile(DiscoveryError):
    """A runtime file whose ``up`` is no longer running."""

    def __init__(self, running: RunningUp) -> None:
        super().__init__(f"ignoring {running.path}: the redstep up that wrote it (pid {running.pid}) is gone")
        self.running = running


@dataclass(frozen=True)
class Resolved:
    """The Redis a command uses, its prefix when the choice implies one, and a note for stderr."""

    url: str
    prefix: str | None = None
    note: str | None = None
    source: str = "configured"  # "configured", "up" or "default": how the URL was found


def runtime_dir(env: Mapping[str, str] | None = None) -> Path:
    """This user's directory of runtime files."""
    env = os.environ if env is None else env
    if env.get("REDSTEP_RUNTIME_DIR"):
        return Path(env["REDSTEP_RUNTIME_DIR"])
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "redstep"
    state_home = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "redstep"


def runtime_file(prefix: str, env: Mapping[str, str] | None = None) -> Path:
    """The runtime file of the ``up`` whose keys start with ``prefix``."""
    return runtime_dir(env) / f"up-{quote(prefix, safe='')}.json"


def _process_is_up(pid: int) -> bool:
    """Whether ``pid`` is alive and, where /proc tells, a redstep process (pids are reused)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, though not ours; the owner check already refused a foreign file
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc here: a live pid is the best evidence there is
    return b"redstep" in command or b"producer.cli" in command


def read_running_up(path: Path) -> RunningUp | None:
    """The ``up`` that wrote ``path``; ``None`` when there is no file.

    Raises:
        DiscoveryError: when the file is not this user's, cannot be read, or is not one of
            ours; a stale file (its ``up`` is gone) raises too, with ``stale`` in its message.
    """
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise DiscoveryError(f"cannot read {path}: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise DiscoveryError(f"{path} is not a regular file; remove it (redstep up writes it anew)")
    if info.st_uid != os.getuid():
        raise DiscoveryError(
            f"{path} belongs to uid {info.st_uid}, not to you (uid {os.getuid()}); it is not trusted."
            " Remove it, or set REDIS_URL"
        )
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise DiscoveryError(
            f"cannot read {path}: {error.strerror}; fix its permissions or remove it"
        ) from None
    running = _parse(raw, path)
    if not _process_is_up(running.pid):
        raise StaleRuntimeFile(running)
    return running


def _parse(raw: bytes, path: Path) -> RunningUp:
    not_ours = f"{path} is not a redstep runtime file; remove it (redstep up writes it anew)"
    if len(raw) > MAX_FILE_BYTES:
        raise DiscoveryError(not_ours)
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DiscoveryError(not_ours) from None
    if not isinstance(document, dict):
        raise DiscoveryError(not_ours)
    url, prefix, pid = document.get("url"), document.get("prefix"), document.get("pid")
    if not (isinstance(url, str) and isinstance(prefix, str) and type(pid) is int):
        raise DiscoveryError(not_ours)
    return RunningUp(url=url, prefix=prefix, pid=pid, path=path)


def _live_ups(env: Mapping[str, str]) -> list[RunningUp]:
    """Every live ``up`` of this user, whatever its prefix; unreadable and stale files are passed over."""
    found = []
    with contextlib.suppress(OSError):
        for path in sorted(runtime_dir(env).glob("up-*.json")):
            with contextlib.suppress(DiscoveryError):
                running = read_running_up(path)
                if running is not None:
                    found.append(running)
    return found


def resolve(configured: str | None, prefix: str | None, env: Mapping[str, str] | None = None) -> Resolved:
    """The Redis a client command should use.

    Args:
        configured: what the user named (``--redis-url``, ``REDIS_URL`` or the parts), if anything.
        prefix: the prefix the user named (``--prefix`` or ``REDSTEP_PREFIX``), if any.

    Raises:
        DiscoveryError: when the runtime file for the prefix cannot be trusted, or several
            ``up``s run and nothing says which one is meant.
    """
    env = os.environ if env is None else env
    if configured:
        return Resolved(configured)
    stale: StaleRuntimeFile | None = None
    try:
        running = read_running_up(runtime_file(prefix or DEFAULT_PREFIX, env))
    except StaleRuntimeFile as error:
        running, stale = None, error
    if running is not None:
        return Resolved(running.url, running.prefix, source="up")
    if prefix is None:
        others = _live_ups(env)
        if len(others) == 1:
            return Resolved(others[0].url, others[0].prefix, source="up")
        if len(others) > 1:
            names = ", ".join(sorted(up.prefix for up in others))
            raise DiscoveryError(
                f"several redstep up stacks are running (prefixes {names}); choose one with REDSTEP_PREFIX"
                " or --prefix, or set REDIS_URL"
            )
    why = f"{stale}; " if stale else "no REDIS_URL and no running redstep up; "
    return Resolved(DEFAULT_URL, note=f"{why}using {DEFAULT_URL}", source="default")


def running_up_for(prefix: str, env: Mapping[str, str] | None = None) -> RunningUp | None:
    """The live ``up`` already serving ``prefix``, if any (a stale or foreign file counts as none)."""
    try:
        return read_running_up(runtime_file(prefix, env))
    except DiscoveryError:
        return None


def write_runtime_file(url: str, prefix: str, env: Mapping[str, str] | None = None) -> Path:
    """Write this process's runtime file (mode 0600, atomically) and return its path."""
    path = runtime_file(prefix, env)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    document = {"url": url, "prefix": prefix, "pid": os.getpid(), "started_at": time.time()}
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".up-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w") as handle:  # mkstemp makes it 0600 already
            json.dump(document, handle)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def remove_runtime_file(path: Path) -> None:
    """Remove ``path`` if it is still this process's (a later ``up`` may have replaced it)."""
    with contextlib.suppress(OSError, DiscoveryError, ValueError):
        raw = path.read_bytes()
        if _parse(raw, path).pid == os.getpid():
            path.unlink()
