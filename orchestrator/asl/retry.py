"""Retry and Catch: which retrier or catcher an error matches, and how long to back off."""

from __future__ import annotations

import hashlib
from typing import Any

from orchestrator.asl import errors
from orchestrator.asl.execution import Thread


def error_matches(error_equals: list[str], error: str | None, *, matched_by_all: bool = False) -> bool:
    """Whether an ``ErrorEquals`` list covers ``error``, with the reserved names' rules.

    ``matched_by_all``: the wildcards match ``error`` even if it is one of ``NOT_MATCHED_BY_ALL``.
    """
    wildcard = matched_by_all or error not in errors.NOT_MATCHED_BY_ALL
    for name in error_equals:
        if name == error:
            return True
        if name == errors.ALL and wildcard:
            return True
        if name == errors.TASK_FAILED and error != errors.TIMEOUT and wildcard:
            return True
    return False


def find_catcher(
    catchers: list[dict[str, Any]] | None, error: str | None, *, matched_by_all: bool = False
) -> dict[str, Any] | None:
    for catcher in catchers or []:
        if error_matches(catcher.get("ErrorEquals", []), error, matched_by_all=matched_by_all):
            return catcher
    return None


def retry_delay(
    retriers: list[dict[str, Any]] | None,
    thread: Thread,
    error: str | None,
    seed: str,
    *,
    matched_by_all: bool = False,
) -> float | None:
    """Seconds to wait before the next attempt, or None when no retrier allows one.

    Counts attempts per retrier in ``thread["retries"]``. Jitter is drawn from a hash of the
    execution and attempt, so the same execution backs off the same way every time it is replayed.
    """
    for index, retrier in enumerate(retriers or []):
        if not error_matches(retrier.get("ErrorEquals", []), error, matched_by_all=matched_by_all):
            continue
        counts = thread.setdefault("retries", {})
        attempts = counts.get(str(index), 0)
        if attempts >= retrier.get("MaxAttempts", 3):
            return None
        counts[str(index)] = attempts + 1
        delay = retrier.get("IntervalSeconds", 1) * retrier.get("BackoffRate", 2.0) ** attempts
        if "MaxDelaySeconds" in retrier:
            delay = min(delay, retrier["MaxDelaySeconds"])
        if retrier.get("JitterStrategy") == "FULL":
            digest = hashlib.blake2b(f"{seed}:{index}:{attempts}".encode(), digest_size=8).digest()
            delay *= int.from_bytes(digest, "big") / 2**64
        return float(delay)
    return None
