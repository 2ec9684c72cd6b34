"""The metrics' pieces without a stack: what a transition counts, how a scrape reads the hash."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.metrics import counting, scrape
from orchestrator.metrics.requests import RequestCounting, RequestMeter
from orchestrator.protocol.metrics import TaskMeter, bounded_error, field, parse_field
from orchestrator.runtime.transitions import Transition


def execution(status: str, start: float = 100.0, stop: float | None = None) -> dict[str, Any]:
    return {"name": "e1", "stateMachine": "M", "status": status, "startDate": start, "stopDate": stop}


def entered(*types: str) -> list[dict[str, Any]]:
    return [{"type": kind} for kind in types]


def test_a_start_counts_a_start_a_running_execution_and_the_states_it_entered() -> None:
    counts: Counter[str] = Counter()
    transition = Transition(execution("RUNNING"), None, entered("ExecutionStarted", "PassStateEntered"))

    counting.count_transition(counts, transition)

    assert counts == {
        field("executions_started", "M"): 1,
        field("executions_running", "M"): 1,
        field("state_transitions", "M"): 1,
    }


def test_an_end_counts_its_status_its_duration_and_leaves_running() -> None:
    counts: Counter[str] = Counter()
    transition = Transition(execution("FAILED", 100.0, 100.3), "RUNNING", entered("ExecutionFailed"))

    counting.count_transition(counts, transition)

    assert counts == {
        field("executions_running", "M"): -1,
        field("executions_finished", "M", "FAILED"): 1,
        field("execution_duration_bucket", "M", "0.5"): 1,
        field("execution_duration_sum_us", "M"): 300_000,
    }


def test_only_retried_attempts_count_as_retries() -> None:
    counts: Counter[str] = Counter()
    transition = Transition(execution("RUNNING"), "RUNNING")
    task = {"execution": "e1", "token": "t", "function_arn": "", "payload": None}
    transition.tasks = [{**task, "function": "f", "attempt": 1}, {**task, "function": "f", "attempt": 3}]

    counting.count_transition(counts, transition)

    assert counts == {field("task_retries", "f"): 1}


def test_a_redriven_execution_runs_again_without_a_second_start() -> None:
    counts: Counter[str] = Counter()
    counting.count_transition(counts, Transition(execution("RUNNING"), "FAILED"))

    assert counts == {field("executions_running", "M"): 1}


def test_error_labels_are_bounded() -> None:
    assert bounded_error("States.Timeout") == "States.Timeout"
    assert bounded_error("Lambda.Unknown") == "Lambda.Unknown"
    assert bounded_error("MyVeryOwnError") == "other"
    assert bounded_error(None) == "other"


def test_a_worker_counts_durations_and_failures_into_the_script_arguments() -> None:
    meter = TaskMeter(enabled=True)
    meter.took({"function": "f"}, {"type": "TaskSucceeded"}, 0.02)
    meter.took({"function": "f"}, {"type": "TaskFailed", "error": "KeyError"}, 2.0)

    keys, args = meter.script_arguments("p")

    assert keys == ["p:metrics"]
    pairs = dict(zip(args[1::2], map(int, args[2::2]), strict=True))
    assert int(args[0]) == len(pairs) == 4
    assert pairs[field("task_duration_bucket", "f", "0.025")] == 1
    assert pairs[field("task_duration_bucket", "f", "2.5")] == 1
    assert pairs[field("task_duration_sum_us", "f")] == 2_020_000
    assert pairs[field("task_failures", "f", "other")] == 1


def test_a_worker_with_metrics_off_adds_nothing_to_its_script_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDSTEP_METRICS", "0")
    meter = TaskMeter()
    meter.took({"function": "f"}, {"type": "TaskFailed"}, 1.0)

    assert meter.script_arguments("p") == ([], [])


def exposition(snapshot: scrape.Snapshot) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    class Collector:
        def collect(self) -> Any:
            return scrape.families(snapshot)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_histogram_buckets_become_cumulative_and_the_sum_seconds() -> None:
    counts = {
        parse_field(field("task_duration_bucket", "f", "0.01")): 2,
        parse_field(field("task_duration_bucket", "f", "1.0")): 3,
        parse_field(field("task_duration_bucket", "f", "+Inf")): 1,
        parse_field(field("task_duration_sum_us", "f")): 4_500_000,
    }
    samples = exposition(scrape.Snapshot(counts=counts))  # type: ignore[arg-type]

    def bucket(le: str) -> float:
        return samples[("redstep_task_duration_seconds_bucket", (("function", "f"), ("le", le)))]

    assert [bucket("0.005"), bucket("0.01"), bucket("0.5"), bucket("1.0"), bucket("+Inf")] == [0, 2, 2, 5, 6]
    assert samples[("redstep_task_duration_seconds_count", (("function", "f"),))] == 6
    assert samples[("redstep_task_duration_seconds_sum", (("function", "f"),))] == 4.5


def test_foreign_fields_are_left_out_and_running_never_shows_below_zero() -> None:
    assert parse_field("not json") is None
    assert parse_field("[1, 2]") is None
    counts = {
        ("executions_running", ("M",)): -2,
        ("executions_started", ("M", "extra label")): 5,
        ("executions_started", ("M",)): 3,
    }
    samples = exposition(scrape.Snapshot(counts=counts))

    assert samples[("redstep_executions_running", (("state_machine", "M"),))] == 0
    assert samples[("redstep_executions_started_total", (("state_machine", "M"),))] == 3
    assert len([name for name, _ in samples if name == "redstep_executions_started_total"]) == 1


def test_request_labels_name_served_actions_only() -> None:
    targets = {"AWSStepFunctions": ("states", frozenset({"StartExecution"}))}
    middleware = RequestCounting(None, RequestMeter(None, "p", enabled=True), targets, frozenset({"Publish"}))  # type: ignore[arg-type]

    assert middleware.labels("AWSStepFunctions.StartExecution", b"") == ("states", "StartExecution")
    assert middleware.labels("AWSStepFunctions.MadeUp", b"") == ("states", "other")
    assert middleware.labels("Nobody.StartExecution", b"") == ("other", "other")
    assert middleware.labels("", b"Action=Publish&TopicArn=x") == ("sns", "Publish")
    assert middleware.labels("", b"Action=%00weird") == ("sns", "other")


def test_a_scrape_without_redis_answers_503_naming_it() -> None:
    import redis
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from orchestrator.metrics.endpoint import install
    from orchestrator.runtime.server import free_port
    from orchestrator.settings import Settings

    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    app = Starlette()
    install(app, redis.Redis.from_url(url, socket_connect_timeout=1), Settings(redis_url=url, prefix="p"))

    answer = TestClient(app).get("/metrics")

    assert answer.status_code == 503
    assert "could not reach its Redis" in answer.text


def test_an_orchestrator_with_metrics_off_counts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(counting, "ENABLED", False)
    counts: Counter[str] = Counter()

    counting.count_transition(counts, Transition(execution("SUCCEEDED", stop=101.0), None))

    assert counts == {}
