"""A worker whose report call's reply is lost sends the same reports again; Redis applied the
first call already, so the task's counts (duration, failure) must be added once, not per call."""

from __future__ import annotations

import json
import uuid
from typing import Any

import redis

from orchestrator.protocol.keys import SharedKeys
from orchestrator.protocol.metrics import TaskMeter, metrics_key, parse_field
from worker.entry import carry_out, publish_reports
from worker.leases import WorkerLeases
from worker.registry import FunctionRegistry


class LosesAReportReply(redis.Redis):
    """A connection over which the first report call is applied but its reply never comes back,
    as when the connection drops right after Redis ran it."""

    lost = 0

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        reply = super().evalsha(sha, numkeys, *keys_and_args)
        if not self.lost and any(str(key).endswith(":events") for key in keys_and_args[:numkeys]):
            self.lost += 1
            raise redis.ConnectionError("Connection closed by server.")
        return reply


def _counts(redis_client: redis.Redis, prefix: str) -> dict[Any, int]:
    stored = redis_client.hgetall(metrics_key(prefix))
    return {parse_field(name.decode()): int(by) for name, by in stored.items()}


def test_a_report_sent_again_after_its_reply_was_lost_is_counted_once(
    redis_client: redis.Redis, redis_url: str
) -> None:
    prefix = f"m{uuid.uuid4().hex[:6]}"
    connection = LosesAReportReply.from_url(redis_url)
    registry = FunctionRegistry()

    def fails(event: Any, context: Any) -> Any:
        raise ValueError("always fails")

    registry.register("flaky", fails)
    task = {"execution": "e1", "token": "e1:1", "function": "flaky", "payload": {}, "attempt": 1}
    leases = WorkerLeases(connection, prefix, "w1", lease_seconds=30)

    reports = carry_out(
        [task], f"{prefix}:events", connection=connection, prefix=prefix, registry=registry, leases=leases
    )

    assert [report["type"] for report in reports] == ["TaskFailed"]
    # Both calls were applied (the orchestrators take a token once), the counts only once.
    assert connection.lost == 1
    assert redis_client.xlen(f"{prefix}:events") == 2
    assert redis_client.zcard(SharedKeys(prefix).leases) == 0
    counts = _counts(redis_client, prefix)
    assert counts[("task_failures", ("flaky", "other"))] == 1
    assert sum(by for (metric, _), by in counts.items() if metric == "task_duration_bucket") == 1
    connection.close()


def test_the_same_report_call_made_twice_counts_its_tasks_once(redis_client: redis.Redis) -> None:
    prefix = f"m{uuid.uuid4().hex[:6]}"
    meter = TaskMeter(enabled=True)
    meter.took({"function": "f"}, {"type": "TaskSucceeded"}, 0.3)
    report = json.dumps({"type": "TaskSucceeded", "execution": "e1", "token": "t", "output": {}})
    leases = SharedKeys(prefix).leases
    redis_client.zadd(leases, {"lease-1": 1.0})

    for _ in range(2):
        publish_reports(
            redis_client, f"{prefix}:events", [report], ["lease-1"], leases, meter.script_arguments(prefix)
        )

    assert _counts(redis_client, prefix) == {
        ("task_duration_bucket", ("f", "0.5")): 1,
        ("task_duration_sum_us", ("f",)): 300_000,
    }
