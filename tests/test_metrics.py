"""/metrics after a known workload on a real stack: the counts equal what the workload did.

Two orchestrators, two workers (one of them restarted half way) and two ``serve`` processes
share one prefix; executions are started through both ``serve`` processes. The scrape is
parsed with prometheus-client's own parser, as Prometheus would read it.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
import yaml
from botocore.config import Config
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.metrics import scrape as scrape_module
from orchestrator.protocol import metrics as layout
from orchestrator.protocol.keys import SharedKeys
from orchestrator.protocol.metrics import TaskMeter, metrics_key, parse_field
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.server import RedisServer
from orchestrator.runtime.store import CommitRefused, Store
from orchestrator.settings import Settings
from tests.api_fixtures import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    api_env,
    eventually,
    role_arn,
    serve,
    start,
)
from tests.processes import stop
from worker.entry import publish_reports

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = """
import time


def nap(event, context):
    time.sleep(float(event.get("seconds", 0)))
    return {"napped": event.get("seconds", 0)}


def explode(event, context):
    raise ValueError("this function always fails")
"""
OK_RUNS_PER_PHASE = 3
FAILING_RUNS_PER_PHASE = 1
PHASES = 2


def ok_definition() -> str:
    return json.dumps(
        {
            "StartAt": "Nap",
            "States": {
                "Nap": {"Type": "Task", "Resource": "nap", "Next": "Done"},
                "Done": {"Type": "Pass", "End": True},
            },
        }
    )


def failing_definition() -> str:
    """One task that raises, retried once, then the execution fails: two attempts, one retry."""
    retry = [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 1}]
    boom = {"Type": "Task", "Resource": "explode", "Retry": retry, "End": True}
    return json.dumps({"StartAt": "Boom", "States": {"Boom": boom}})


@dataclass
class MetricsStack:
    urls: list[str]
    env: dict[str, str]
    logs: Path
    functions: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def sfn(self, url: str) -> Any:
        return boto3.client(
            "stepfunctions",
            endpoint_url=url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            config=Config(retries={"max_attempts": 1}),
        )

    def start_worker(self) -> subprocess.Popen[bytes]:
        name = f"worker-{len(self.workers)}"
        process = start(self.env, self.logs / f"{name}.log", "worker", "--functions", str(self.functions))
        self.workers.append(process)
        return process


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``url``/metrics: (sample name, sorted labels) -> value."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain")
        text = answer.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetricsStack]:
    logs = tmp_path_factory.mktemp("metrics")
    functions = logs / "metrics_functions.py"
    functions.write_text(FUNCTIONS)
    env = api_env(redis_server.url, f"metrics{uuid.uuid4().hex[:8]}")
    processes: list[subprocess.Popen[bytes]] = []
    running = MetricsStack([], env, logs, functions)
    try:
        for index in range(2):
            processes.append(start(env, logs / f"orchestrator-{index}.log", "orchestrator"))
        running.start_worker()
        running.start_worker()
        for _ in range(2):
            process, url = serve(env, logs)
            processes.append(process)
            running.urls.append(url)
        yield running
    finally:
        for process in [*processes, *running.workers]:
            stop(process)


@dataclass
class Workload:
    """What the workload did, as a user reads it back through the API."""

    ok_machine: str
    failing_machine: str
    executions: dict[str, list[str]]  # machine -> execution ARNs
    state_entered: dict[str, int]  # machine -> StateEntered events in every history
    starts_per_url: dict[str, int]


def run_phase(stack: MetricsStack, machines: dict[str, str], workload: Workload) -> None:
    """Start every execution of one phase, alternating between the two serve processes, and wait."""
    started = []
    runs = [(workload.ok_machine, OK_RUNS_PER_PHASE), (workload.failing_machine, FAILING_RUNS_PER_PHASE)]
    for machine, count in runs:
        for index in range(count):
            url = stack.urls[len(started) % 2]
            answer = stack.sfn(url).start_execution(
                stateMachineArn=machines[machine], input=json.dumps({"seconds": 0.2 * index})
            )
            workload.starts_per_url[url] += 1
            workload.executions[machine].append(answer["executionArn"])
            started.append(answer["executionArn"])
    sfn = stack.sfn(stack.urls[0])
    for arn in started:
        eventually(lambda arn=arn: sfn.describe_execution(executionArn=arn)["status"] != "RUNNING", arn)


def workers_alive(url: str) -> float:
    return value(scrape(url), "redstep_workers", state="alive")


@pytest.fixture(scope="module")
def workload(stack: MetricsStack) -> Workload:
    sfn = stack.sfn(stack.urls[0])
    eventually(lambda: workers_alive(stack.urls[0]) == 2, "both workers to be alive")
    tag = uuid.uuid4().hex[:8]
    done = Workload(f"metrics-ok-{tag}", f"metrics-failing-{tag}", {}, {}, dict.fromkeys(stack.urls, 0))
    definitions = {done.ok_machine: ok_definition(), done.failing_machine: failing_definition()}
    machines = {}
    for name, definition in definitions.items():
        created = sfn.create_state_machine(name=name, definition=definition, roleArn=role_arn())
        machines[name] = created["stateMachineArn"]
        done.executions[name] = []
    run_phase(stack, machines, done)
    # A worker restart half way: its counts so far stay, the new one's add to them.
    stop(stack.workers[0])
    stack.start_worker()
    eventually(lambda: workers_alive(stack.urls[0]) == 2, "the restarted worker to be alive")
    run_phase(stack, machines, done)
    for machine, arns in done.executions.items():
        entered = 0
        for arn in arns:
            events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
            entered += sum(1 for event in events if event["type"].endswith("StateEntered"))
        done.state_entered[machine] = entered
    return done


def test_execution_counts_equal_the_workload(stack: MetricsStack, workload: Workload) -> None:
    samples = scrape(stack.urls[1])
    ok, failing = workload.ok_machine, workload.failing_machine
    ok_runs, failing_runs = OK_RUNS_PER_PHASE * PHASES, FAILING_RUNS_PER_PHASE * PHASES
    assert value(samples, "redstep_executions_started_total", state_machine=ok) == ok_runs
    assert value(samples, "redstep_executions_started_total", state_machine=failing) == failing_runs
    finished = {"state_machine": ok, "status": "SUCCEEDED"}
    assert value(samples, "redstep_executions_finished_total", **finished) == ok_runs
    finished = {"state_machine": failing, "status": "FAILED"}
    assert value(samples, "redstep_executions_finished_total", **finished) == failing_runs
    assert value(samples, "redstep_executions_running", state_machine=ok) == 0
    assert value(samples, "redstep_execution_duration_seconds_count", state_machine=ok) == ok_runs
    inf = {"state_machine": failing, "le": "+Inf"}
    assert value(samples, "redstep_execution_duration_seconds_bucket", **inf) == failing_runs
    assert value(samples, "redstep_execution_duration_seconds_sum", state_machine=ok) > 0
    for machine, entered in workload.state_entered.items():
        assert value(samples, "redstep_state_transitions_total", state_machine=machine) == entered
    assert workload.state_entered[ok] == 2 * ok_runs


def test_task_counts_equal_the_workload_across_both_workers_and_the_restart(
    stack: MetricsStack, workload: Workload
) -> None:
    samples = scrape(stack.urls[0])
    ok_runs, failing_runs = OK_RUNS_PER_PHASE * PHASES, FAILING_RUNS_PER_PHASE * PHASES
    assert value(samples, "redstep_task_duration_seconds_count", function="nap") == ok_runs
    # Each failing execution ran its task twice: the first attempt and one retry.
    assert value(samples, "redstep_task_duration_seconds_count", function="explode") == 2 * failing_runs
    # Naps of 0, 0.2 and 0.4 s in each phase.
    assert value(samples, "redstep_task_duration_seconds_sum", function="nap") >= 0.6 * PHASES
    failures = value(samples, "redstep_task_failures_total", function="explode", error="other")
    assert failures == 2 * failing_runs
    assert value(samples, "redstep_task_failures_total", function="nap", error="other") == 0
    assert value(samples, "redstep_task_retries_total", function="explode") == failing_runs
    assert value(samples, "redstep_workers", state="alive") == 2


def test_api_requests_sum_across_both_serve_processes(stack: MetricsStack, workload: Workload) -> None:
    assert all(count > 0 for count in workload.starts_per_url.values())
    starts = sum(workload.starts_per_url.values())
    labels = {"service": "states", "action": "StartExecution", "code": "200"}
    for url in stack.urls:
        # A scrape adds its own process's counts at once; the other adds its own every second.
        eventually(lambda url=url: value(scrape(url), "redstep_api_requests_total", **labels) >= starts, url)
        samples = scrape(url)
        assert value(samples, "redstep_api_requests_total", **labels) == starts
        created = {"service": "states", "action": "CreateStateMachine", "code": "200"}
        assert value(samples, "redstep_api_requests_total", **created) == 2
        latency = {"service": "states", "action": "StartExecution"}
        assert value(samples, "redstep_api_request_duration_seconds_count", **latency) == starts


def test_a_refused_request_is_counted_with_its_error_code(stack: MetricsStack, workload: Workload) -> None:
    before = scrape(stack.urls[0])
    labels = {"service": "states", "action": "DescribeExecution", "code": "400"}
    with pytest.raises(stack.sfn(stack.urls[0]).exceptions.ExecutionDoesNotExist):
        stack.sfn(stack.urls[0]).describe_execution(
            executionArn=workload.executions[workload.ok_machine][0] + "-missing"
        )
    after = scrape(stack.urls[0])
    counted = value(before, "redstep_api_requests_total", **labels)
    assert value(after, "redstep_api_requests_total", **labels) == counted + 1


def receive_some(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Messages of one ReceiveMessage that returned any (SQS may answer with none)."""
    received: list[dict[str, Any]] = []

    def got_some() -> bool:
        received.extend(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2).get("Messages", []))
        return bool(received)

    eventually(got_some, "a message received")
    return received


def test_queues_show_their_messages(stack: MetricsStack, workload: Workload) -> None:
    sqs = boto3.client(
        "sqs",
        endpoint_url=stack.urls[0],
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )
    queue = f"metrics-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    for index in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": index}))
    samples = scrape(stack.urls[0])
    assert value(samples, "redstep_queue_messages", queue=queue, state="visible") == 3
    assert value(samples, "redstep_queue_messages", queue=queue, state="in_flight") == 0
    assert value(samples, "redstep_queue_messages", queue=queue, state="dead_letter") == 0
    assert (("redstep_queue_oldest_message_age_seconds", (("queue", queue),))) in samples
    received = receive_some(sqs, url)
    samples = scrape(stack.urls[0])
    assert value(samples, "redstep_queue_messages", queue=queue, state="in_flight") == len(received)
    assert value(samples, "redstep_queue_messages", queue=queue, state="visible") == 3 - len(received)


def test_every_metric_the_deploy_files_use_is_in_the_scrape(stack: MetricsStack, workload: Workload) -> None:
    names = {name for name, _ in scrape(stack.urls[0])}
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    used = {name for expression in expressions for name in re.findall(r"\bredstep_[a-z_]+", expression)}
    assert len(used) >= 12
    assert sorted(used - names) == []
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["redstep"]["metrics_path"] == "/metrics"


def test_a_commit_adds_its_counts_in_the_same_script_call(redis_client: redis.Redis) -> None:
    keys = Keys(f"m{uuid.uuid4().hex[:6]}")
    store = Store(redis_client, keys)
    commit = store.new_commit()
    commit.expect_version("e1", 0)
    commit.save_execution({"name": "e1", "status": "RUNNING", "startDate": 1.0}, 1)
    commit.counts[layout.field("executions_started", "M")] += 2
    commit.counts[layout.field("executions_running", "M")] -= 1

    assert store.commit(commit) == []

    stored = redis_client.hgetall(metrics_key(keys.prefix))
    assert {parse_field(name.decode()): int(by) for name, by in stored.items()} == {
        ("executions_started", ("M",)): 2,
        ("executions_running", ("M",)): -1,
    }


def test_a_commit_whose_count_is_not_a_whole_number_is_refused_whole(redis_client: redis.Redis) -> None:
    keys = Keys(f"m{uuid.uuid4().hex[:6]}")
    store = Store(redis_client, keys)
    commit = store.new_commit()
    commit.save_execution({"name": "e1", "status": "RUNNING", "startDate": 1.0}, 1)
    commit.counts[layout.field("executions_started", "M")] += 0.5  # type: ignore[assignment]

    with pytest.raises(CommitRefused, match="not a whole number"):
        store.commit(commit)

    assert not redis_client.exists(keys.execution("e1"), metrics_key(keys.prefix))


def test_a_workers_counts_travel_with_its_reports(redis_client: redis.Redis) -> None:
    prefix = f"m{uuid.uuid4().hex[:6]}"
    meter = TaskMeter(enabled=True)
    meter.took({"function": "f"}, {"type": "TaskFailed", "error": "States.Timeout"}, 0.3)
    report = json.dumps({"type": "TaskFailed", "execution": "e1", "token": "t", "error": "States.Timeout"})
    leases = SharedKeys(prefix).leases
    redis_client.zadd(leases, {"lease-1": 1.0})

    publish_reports(
        redis_client, f"{prefix}:events", [report], ["lease-1"], leases, meter.script_arguments(prefix)
    )

    assert redis_client.xlen(f"{prefix}:events") == 1
    assert redis_client.zcard(leases) == 0
    stored = redis_client.hgetall(metrics_key(prefix))
    assert {parse_field(name.decode()): int(by) for name, by in stored.items()} == {
        ("task_duration_bucket", ("f", "0.5")): 1,
        ("task_duration_sum_us", ("f",)): 300_000,
        ("task_failures", ("f", "States.Timeout")): 1,
    }


class CountingPipelines(redis.Redis):
    """A client that counts the pipelines it opens."""

    pipelines = 0

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        self.pipelines += 1
        return super().pipeline(*args, **kwargs)


def test_a_scrape_is_one_pipeline_while_the_queues_and_workers_stay_the_same(redis_url: str) -> None:
    settings = Settings(redis_url=redis_url, prefix=f"m{uuid.uuid4().hex[:6]}")
    connection = CountingPipelines.from_url(redis_url)
    connection.sadd(Keys(settings.prefix).queue_names, "orders")
    connection.xadd(Keys(settings.prefix).queue("orders"), {"body": "{}"})
    indexes = scrape_module.Indexes()

    first = scrape_module.read(connection, settings, indexes)
    opened = connection.pipelines
    again = scrape_module.read(connection, settings, indexes)

    assert opened == 2  # the first scrape learns the names
    assert connection.pipelines - opened == 1
    assert [(row.name, row.visible) for row in again.queues] == [
        (row.name, row.visible) for row in first.queues
    ]
    assert ("orders", 1) in [(row.name, row.visible) for row in again.queues]


def test_a_broken_metrics_key_loses_counts_never_a_transition_or_a_report(redis_client: redis.Redis) -> None:
    keys = Keys(f"m{uuid.uuid4().hex[:6]}")
    redis_client.set(metrics_key(keys.prefix), "not a hash")
    store = Store(redis_client, keys)
    commit = store.new_commit()
    commit.save_execution({"name": "e1", "status": "RUNNING", "startDate": 1.0}, 1)
    commit.counts[layout.field("executions_started", "M")] += 1
    meter = TaskMeter(enabled=True)
    meter.took({"function": "f"}, {"type": "TaskSucceeded"}, 0.1)
    leases = SharedKeys(keys.prefix).leases
    redis_client.zadd(leases, {"lease-1": 1.0})

    assert store.commit(commit) == []
    publish_reports(
        redis_client, keys.events, ["{}"], ["lease-1"], leases, meter.script_arguments(keys.prefix)
    )

    assert redis_client.hget(keys.execution("e1"), "version") == b"1"
    assert redis_client.xlen(keys.events) == 1
    assert redis_client.zcard(leases) == 0
    assert redis_client.get(metrics_key(keys.prefix)) == b"not a hash"
