"""The suite's child processes: stopped with SIGTERM, a bounded wait, then SIGKILL, so none outlives its test.

A process that outlives SIGTERM's grace is SIGKILLed and reported as an
:class:`IgnoredSigterm` warning (a teardown must never hang the suite, and a slow stop is
still worth seeing). A process started in a session of its own (``start_new_session=True``,
as :func:`tests.chaos.redstep_process` does) is stopped with everything it started.
:func:`descendants` lets conftest find the processes a test module forgot.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import warnings
from collections.abc import Iterable
from pathlib import Path

# Longer than any clean shutdown takes on a busy machine (a worker finishing its current job);
# short enough that a process that ignores SIGTERM costs a teardown seconds, not minutes.
STOP_GRACE_SECONDS = 10.0


class IgnoredSigterm(UserWarning):
    """A process still ran ``STOP_GRACE_SECONDS`` after SIGTERM and was SIGKILLed."""


def stop(process: subprocess.Popen, grace: float = STOP_GRACE_SECONDS) -> int:
    """SIGTERM ``process``, wait up to ``grace`` seconds, then SIGKILL it; its exit code."""
    return stop_all([process], grace)[0]


def stop_all(processes: Iterable[subprocess.Popen], grace: float = STOP_GRACE_SECONDS) -> list[int]:
    """Stop ``processes`` together (one shared ``grace``), each as :func:`stop` does; their exit codes."""
    processes = list(processes)
    leaders = {p.pid for p in processes if p.poll() is None and _leads_its_group(p.pid)}
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            warnings.warn(
                IgnoredSigterm(f"pid {process.pid} ({_command(process)}) outlived SIGTERM by {grace}s"),
                stacklevel=3,
            )
            if process.pid in leaders:
                _kill_group(process.pid)
            else:
                process.kill()
            process.wait()
    for pid in leaders:
        _kill_group(pid)  # whatever the leader started and left behind
    return [p.returncode for p in processes]


def descendants(root: int) -> dict[int, str]:
    """The live (not zombie) processes under ``root``, with their command lines, read from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended while we looked
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = _cmdline(pid)
                frontier.append(pid)
    return found


def kill_now(pid: int) -> None:
    """SIGKILL ``pid``, and its process group when it leads one."""
    if _leads_its_group(pid):
        _kill_group(pid)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _leads_its_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _command(process: subprocess.Popen) -> str:
    args = process.args
    return " ".join(map(str, args)) if isinstance(args, list | tuple) else str(args)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"
