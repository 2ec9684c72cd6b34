"""A sample of the AWS-recorded cases, run on a real stack: orchestrator, two worker processes, Redis.

Each sampled case gives on the stack exactly what the local runner gives for it, and
check.py scores the stack's results as passing. The sample rule is in
``tests.conformance.stack.sample_cases``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestrator.settings import Settings
from tests.conformance.cases import CASES, CONFORMANCE, load_cases
from tests.conformance.stack import (
    CASE_FUNCTIONS,
    comparable,
    invalid_result,
    local_result,
    running_stack,
    sample_cases,
    stack_result,
    start_on_stack,
)

pytestmark = pytest.mark.skipif(
    not CASES.is_dir(),
    reason=f"the AWS-recorded conformance cases are not at {CONFORMANCE} (../shared/conformance)",
)

WAIT_SECONDS = 60.0


@pytest.fixture(scope="module")
def sample() -> list[dict[str, Any]]:
    return sample_cases(load_cases())


def test_the_sample_covers_every_category_and_state_type(sample: list[dict[str, Any]]) -> None:
    """At least 50 cases, from every category, with Map and Parallel among them."""
    cases = load_cases()
    assert len(sample) >= 50
    assert {c["category"] for c in sample} == {c["category"] for c in cases}
    sampled_features = {f for c in sample for f in c.get("features", [])}
    all_states = {f for c in cases for f in c.get("features", []) if f.startswith("state:")}
    assert all_states <= sampled_features
    assert {"state:Map", "state:Parallel"} <= sampled_features


def test_sampled_cases_give_on_the_stack_what_they_give_locally_and_what_aws_gave(
    sample: list[dict[str, Any]], settings: Settings, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    """Started all at once on the stack, each case ends as it does locally, and check.py passes it."""
    names = {case["id"]: (f"conformance-{index}", f"case-{index}") for index, case in enumerate(sample)}
    results: dict[str, dict[str, Any]] = {}
    with running_stack(settings, subprocess_env, [CASE_FUNCTIONS], tmp_path) as stack:
        started = []
        for case in sample:
            machine, execution = names[case["id"]]
            refused = start_on_stack(stack.client, case, machine, execution)
            if refused is None:
                started.append(case)
            else:
                results[case["id"]] = invalid_result(case, refused)
        for case in started:
            try:
                results[case["id"]] = stack_result(stack.client, case, names[case["id"]][1], WAIT_SECONDS)
            except TimeoutError as exc:
                pytest.fail(f"{case['id']}: {exc}\n{stack.logs_tail()}")

    mismatches = []
    for case in sample:
        expected = comparable(case, local_result(case, *names[case["id"]]))
        actual = comparable(case, results[case["id"]])
        if actual != expected:
            mismatches.append(f"{case['id']}\n  local: {expected}\n  stack: {actual}")
    assert not mismatches, "\n".join(mismatches)

    report = score(sample, results, tmp_path)
    totals = re.search(r"^(\d+) passed, (\d+) failed$", report, flags=re.M)
    assert totals is not None, report[-2000:]
    assert (int(totals.group(1)), int(totals.group(2))) == (len(sample), 0), report[-6000:]


def score(sample: list[dict[str, Any]], results: dict[str, dict[str, Any]], tmp_path: Path) -> str:
    """check.py's report on ``results``, against a cases folder holding only the sampled cases."""
    cases_dir = tmp_path / "cases"
    for case in sample:
        source = CASES / case["category"] / f"{case['id']}.json"
        target = cases_dir / case["category"] / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(source)
    lines = tmp_path / "stack-results.jsonl"
    lines.write_text("".join(json.dumps(results[case["id"]]) + "\n" for case in sample))
    return subprocess.run(
        [sys.executable, str(CONFORMANCE / "check.py"), str(cases_dir), str(lines)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
