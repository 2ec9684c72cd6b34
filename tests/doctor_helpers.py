"""The doctor as a test's last word: a run that ends with a broken invariant fails, naming it."""

from __future__ import annotations

import redis

from orchestrator.runtime.doctor import check
from orchestrator.settings import Settings


def assert_consistent(redis_client: redis.Redis, settings: Settings) -> None:
    """Fail when the stored state breaks an invariant (see orchestrator.runtime.doctor); warnings pass."""
    broken = [problem for problem in check(redis_client, settings) if problem.fails]
    lines = "\n".join(f"  {p.subject} [{p.invariant}] {p.explanation}" for p in broken)
    assert not broken, f"the stored state breaks {len(broken)} invariant(s):\n{lines}"
