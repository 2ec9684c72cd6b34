"""Every Lua script is a file in a ``lua/`` folder (protocol's or runtime's) whose header documents it.

A reader should find every key a script touches at the top of its file, and every script in
one of two folders (the worker's in orchestrator/protocol/lua, the orchestrator's own in
orchestrator/runtime/lua): so each file opens with a comment naming each KEYS[i] and ARGV[i] its body uses
and what it returns, and no Python module outside the tests holds Lua of its own.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest

from orchestrator.protocol import scripts as protocol_scripts
from orchestrator.protocol.scripts import LUA_FOLDER, lua_source
from orchestrator.runtime import scripts as runtime_scripts

REPO = Path(__file__).resolve().parents[1]
# The scripts a worker runs (protocol) and the orchestrator's own (runtime): (package, file name).
LUA_FILES = sorted(
    (package, entry.name)
    for package in (protocol_scripts.LUA_PACKAGE, runtime_scripts.LUA_PACKAGE)
    for entry in resources.files(package).joinpath(LUA_FOLDER).iterdir()
    if entry.name.endswith(".lua")
)
# KEYS[3], ARGV[1]: a literal index; a range header such as ARGV[3..] or ARGV[n+3 ..] covers the rest.
LITERAL_INDEX = re.compile(r"\b(KEYS|ARGV)\[(\d+)\]")
RANGE_START = re.compile(r"\b(KEYS|ARGV)\[(\d+)\s*\.\.")


def header_and_body(source: str) -> tuple[str, str]:
    """The leading comment block of a script, and everything after it."""
    lines = source.splitlines()
    header_length = next((i for i, line in enumerate(lines) if not line.startswith("--")), len(lines))
    return "\n".join(lines[:header_length]), "\n".join(lines[header_length:])


def test_the_scripts_are_all_there() -> None:
    worker = {
        "append_reports.lua",
        "give_back_jobs.lua",
        "reclaim_jobs.lua",
        "renew_leases.lua",
        "set_aside_job.lua",
        "start_tasks.lua",
    }
    orchestrator = {"commit.lua", "fire_timers.lua", "sweep_closed.lua"}
    assert {(protocol_scripts.LUA_PACKAGE, name) for name in worker} <= set(LUA_FILES)
    assert {(runtime_scripts.LUA_PACKAGE, name) for name in orchestrator} <= set(LUA_FILES)


@pytest.mark.parametrize(("package", "file_name"), LUA_FILES)
def test_each_script_opens_with_a_header_naming_its_keys_argv_and_reply(package: str, file_name: str) -> None:
    header, body = header_and_body(lua_source(file_name.removesuffix(".lua"), package))
    opening = f"-- {file_name}: "
    assert header.startswith(opening), f"{file_name} should open with '{opening}<what it does>'"
    for kind in ("KEYS", "ARGV"):
        documented_lines = [line for line in header.splitlines() if line.startswith(f"-- {kind}")]
        assert documented_lines, f"{file_name}: no '-- {kind}...' line in its header ('-- {kind}: none')"
    documented = {(kind, int(index)) for kind, index in LITERAL_INDEX.findall(header)}
    ranges = {(kind, int(start)) for kind, start in RANGE_START.findall(header)}
    for kind, index in sorted({(kind, int(index)) for kind, index in LITERAL_INDEX.findall(body)}):
        covered = (kind, index) in documented or any(k == kind and start <= index for k, start in ranges)
        assert covered, f"{file_name} uses {kind}[{index}] but its header does not say what it holds"
    assert "Returns" in header, f"{file_name}: the header should say what it returns ('-- Returns ...')"


def test_no_python_module_outside_the_tests_holds_lua() -> None:
    ignored = {"tests", "build", "dist", "node_modules"}
    offenders = [
        str(path.relative_to(REPO))
        for path in REPO.rglob("*.py")
        if not any(part.startswith(".") or part in ignored for part in path.relative_to(REPO).parts)
        and "redis.call(" in path.read_text(encoding="utf-8")
    ]
    assert offenders == [], f"move the Lua in {offenders} into a lua/<name>.lua (protocol's or runtime's)"


def test_nothing_but_the_doctor_lists_keys_with_scan() -> None:
    """The app's ACL user is refused SCAN (see docker-compose.yml): redstep keeps sets of what it
    must find instead. Only the doctor looks for keys no index lists, and says so when refused."""
    root = Path(__file__).resolve().parents[1]
    offenders = [
        str(path.relative_to(root))
        for folder in ("orchestrator", "worker", "producer")
        for path in (root / folder).rglob("*.py")
        if path.name != "doctor.py" and re.search(r"\.scan_iter\(|\.scan\(|\"SCAN\"", path.read_text())
    ]
    assert offenders == []
