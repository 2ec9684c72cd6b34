"""Every AWS-recorded conformance case, run through the local runner and scored by check.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conformance.cases import CASES, CONFORMANCE, known_failures, load_cases, run_case

pytestmark = pytest.mark.skipif(
    not CASES.is_dir(),
    reason=f"the AWS-recorded conformance cases are not at {CONFORMANCE} (../shared/conformance)",
)


def test_every_recorded_case_gives_what_aws_gave(tmp_path: Path) -> None:
    """Status, output, error, cause and history of every case match AWS, as check.py scores them."""
    cases = load_cases()
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(run_case(case)) + "\n" for case in cases))
    report = subprocess.run(
        [sys.executable, str(CONFORMANCE / "check.py"), str(CASES), str(results)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    failed_ids = set(re.findall(r"^FAIL (\S+)", report, flags=re.M))
    totals = re.search(r"^(\d+) passed, (\d+) failed$", report, flags=re.M)
    assert totals is not None, report[-2000:]
    assert int(totals.group(1)) + int(totals.group(2)) == len(cases) > 500
    unexpected = failed_ids - set(known_failures())
    assert not unexpected, f"cases that fail and are not listed as known failures:\n{report[-6000:]}"


def test_known_failures_list_only_cases_that_still_fail() -> None:
    """A case that now passes must leave tests/conformance_known_failures.txt."""
    cases = {case["id"]: case for case in load_cases()}
    for case_id in known_failures():
        assert case_id in cases, f"{case_id} is listed as a known failure but no such case exists"
