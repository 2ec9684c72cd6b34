"""The opt-in hop timestamps the benchmark reads (orchestrator.protocol.hops)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from orchestrator.protocol.hops import HopTrace


def test_without_a_directory_the_trace_is_off() -> None:
    assert HopTrace(None).on is False
    assert HopTrace("").on is False


def test_each_note_is_one_json_line_in_the_process_own_file(tmp_path: Path) -> None:
    trace = HopTrace(str(tmp_path / "hops"))
    assert trace.on

    trace.note("claimed", job="j1")
    trace.note("ran", job="j1", execution="e1", began=1.0, at=2.0)

    lines = (tmp_path / "hops" / f"{os.getpid()}.jsonl").read_text().splitlines()
    first, second = (json.loads(line) for line in lines)
    assert first["kind"] == "claimed" and first["job"] == "j1" and isinstance(first["at"], float)
    assert second == {"kind": "ran", "job": "j1", "execution": "e1", "began": 1.0, "at": 2.0}
