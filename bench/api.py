"""StartExecution and DescribeExecution through boto3 against one ``redstep serve`` process.

Starts a private redis-server and one ``redstep serve`` (SigV4 checked), registers the
dragon pipeline's definition with CreateStateMachine, then measures, through unchanged boto3
clients on loopback:

- one client at a time: each request's latency (p50 / p95 / p99) and requests/s;
- ``--threads`` clients at once (one boto3 client per thread): requests/s and latency.

No orchestrator or worker runs: StartExecution commits the execution's first transition
and queues its first task, which is all the endpoint does; DescribeExecution then reads the
executions just started.

Then ListExecutions of a rare machine (5 executions, the oldest) among ``--executions``
executions of another machine: read from the global index (as before each machine had an
index of its own), the one-off rebuild of the per-machine indexes, and from the machine's
own index.

Last, the dragon flow when every record enters through SQS: a second ``serve`` with an
orchestrator and ``--workers`` workers on a prefix of their own; ``--records`` dragon
records sent with SendMessageBatch (10 a call, 4 boto3 clients at once); executions/s from
the first send to the last terminal execution.

    python bench/api.py [--requests 2000] [--threads 8] [--executions 100000] [--records 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import boto3
import pipeline
import redis
from botocore.config import Config
from pipeline import percentiles

from orchestrator.asl.definition import StateMachine
from orchestrator.runtime import execution_index, transitions
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.machines import dragon_pipeline_definition, machine_version
from orchestrator.runtime.server import RedisServer, free_port
from orchestrator.runtime.store import Store
from orchestrator.settings import Settings

KEY_ID, SECRET = "AKIDBENCH", "bench-secret"
RECORD = {
    "dragon_name_str": "Bench",
    "description_str": "a benchmark dragon",
    "family_str": "red",
    "location_city_str": "Seattle",
    "location_state_str": "WA",
    "location_country_str": "USA",
    "location_neighborhood_str": "Fremont",
}


PASS = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
ROLE = "arn:aws:iam::000000000000:role/bench"
FILL_BATCH = 500


def client(url: str, service: str = "stepfunctions") -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        config=Config(retries={"max_attempts": 1}, max_pool_connections=4),
    )


def timed(calls: list[Callable[[], Any]]) -> list[float]:
    latencies = []
    for call in calls:
        began = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - began)
    return latencies


def measure(
    name: str, url: str, requests: int, threads: int, make_call: Callable[[Any, int], Callable[[], Any]]
) -> None:
    """Print one line for one client, one for ``threads`` clients at once."""
    sequential = client(url)
    began = time.perf_counter()
    latencies = timed([make_call(sequential, i) for i in range(requests)])
    elapsed = time.perf_counter() - began
    print(f"{name:18} 1 client : {requests / elapsed:7.0f} req/s  p50/p95/p99 {percentiles(latencies)} ms")

    per_thread = requests // threads
    results: list[list[float]] = [[] for _ in range(threads)]
    clients = [client(url) for _ in range(threads)]
    calls = [
        [make_call(clients[t], requests + t * per_thread + i) for i in range(per_thread)]
        for t in range(threads)
    ]
    workers = [
        threading.Thread(target=lambda t=t: results[t].extend(timed(calls[t]))) for t in range(threads)
    ]
    began = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    every = [latency for result in results for latency in result]
    print(
        f"{name:18} {threads} clients: {len(every) / elapsed:7.0f} req/s  p50/p95/p99 {percentiles(every)} ms"
    )


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"redstep serve exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("redstep serve did not come up")


@contextmanager
def serving(redis_url: str, prefix: str, work: str) -> Iterator[str]:
    """A ``redstep serve`` on ``prefix``, its URL until the block ends."""
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "REDSTEP_PREFIX": prefix,
        "REDSTEP_ACCESS_KEY_ID": KEY_ID,
        "REDSTEP_SECRET_ACCESS_KEY": SECRET,
        "REDSTEP_RUNTIME_DIR": work,
    }
    with Path(work, f"serve-{prefix}.log").open("wb") as log:
        command = [sys.executable, "-m", "producer.cli", "serve", "--port", str(port)]
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def start_and_describe(url: str, args: argparse.Namespace) -> None:
    machine = client(url).create_state_machine(
        name="BenchPipeline", definition=dragon_pipeline_definition(), roleArn=ROLE
    )["stateMachineArn"]
    run = uuid.uuid4().hex[:8]
    body = json.dumps(RECORD)
    arns: list[str] = []

    def start(sfn: Any, index: int) -> Callable[[], Any]:
        def call() -> None:
            arns.append(
                sfn.start_execution(stateMachineArn=machine, name=f"{run}-{index}", input=body)[
                    "executionArn"
                ]
            )

        return call

    def describe(sfn: Any, index: int) -> Callable[[], Any]:
        return lambda: sfn.describe_execution(executionArn=arns[index % len(arns)])

    print(f"redstep serve, one process, SigV4 checked; {args.requests} requests per line")
    measure("StartExecution", url, args.requests, args.threads, start)
    measure("DescribeExecution", url, args.requests, args.threads, describe)


def fill(redis_client: redis.Redis, prefix: str, machine_name: str, count: int) -> None:
    """``count`` finished executions of a Pass machine, committed as the runtime commits starts."""
    settings, keys = Settings(prefix=prefix), Keys(prefix)
    store = Store(redis_client, keys)
    machine = StateMachine.parse(PASS, machine_name)
    machine.version = machine_version(PASS)
    run = uuid.uuid4().hex[:8]
    for first in range(0, count, FILL_BATCH):
        commit = store.new_commit()
        for index in range(first, min(first + FILL_BATCH, count)):
            name = f"{run}-{index}"
            commit.expect_version(name, 0)
            transitions.record(commit, transitions.start(machine, name, {}, time.time()), 0, settings)
        store.commit(commit)


def list_rare(url: str, redis_url: str, prefix: str, args: argparse.Namespace) -> None:
    """ListExecutions of a machine with 5 executions among ``args.executions`` of another."""
    sfn, keys = client(url), Keys(prefix)
    redis_client = redis.Redis.from_url(redis_url)
    rare = sfn.create_state_machine(name="Rare", definition=PASS, roleArn=ROLE)["stateMachineArn"]
    for index in range(5):
        sfn.start_execution(stateMachineArn=rare, name=f"rare-{index}")
    began = time.perf_counter()
    fill(redis_client, prefix, "Common", args.executions)
    print(
        f"\n{args.executions} executions of another machine committed in {time.perf_counter() - began:.0f} s"
    )

    def timed_lists(count: int, **filters: Any) -> list[float]:
        latencies = timed([lambda: sfn.list_executions(stateMachineArn=rare, **filters)] * count)
        assert len(sfn.list_executions(stateMachineArn=rare, **filters)["executions"]) == 5
        return latencies

    # Before: as if the per-machine indexes had never been built (another reader "builds" them).
    redis_client.delete(execution_index.built_key(keys))
    redis_client.set(execution_index.building_key(keys), "bench")
    for filters in ({}, {"statusFilter": "SUCCEEDED"}):
        shown = filters.get("statusFilter", "no filter")
        latencies = timed_lists(3, **filters)
        print(f"ListExecutions rare, global index ({shown}):  p50/p95/p99 {percentiles(latencies)} ms")
    # The rebuild, as the first reader after an upgrade runs it, from nothing.
    for machine in ("Rare", "Common"):
        redis_client.delete(
            execution_index.all_key(keys, machine), execution_index.status_key(keys, machine, "SUCCEEDED")
        )
    redis_client.delete(execution_index.building_key(keys))
    began = time.perf_counter()
    sfn.list_executions(stateMachineArn=rare)  # starts the rebuild in serve, answers from the global index
    first = time.perf_counter() - began
    while not redis_client.exists(execution_index.built_key(keys)):
        time.sleep(0.05)
    print(
        f"ListExecutions rare, first call {first:.1f} s; the rebuild it started took"
        f" {time.perf_counter() - began:.1f} s"
    )
    for filters in ({}, {"statusFilter": "SUCCEEDED"}):
        shown = filters.get("statusFilter", "no filter")
        latencies = timed_lists(200, **filters)
        print(f"ListExecutions rare, machine's index ({shown}): p50/p95/p99 {percentiles(latencies)} ms")
    redis_client.close()


def dragon_flow_through_sqs(redis_url: str, work: str, args: argparse.Namespace) -> None:
    """Dragon records through SQS SendMessageBatch -> orchestrator -> workers; executions/s."""
    prefix = "benchsqs"
    redis_client = redis.Redis.from_url(redis_url)
    stack = pipeline.Stack(redis_url, prefix, 1, args.workers, Path(work, "stack.log"))
    stack.env.update(REDSTEP_RUNTIME_DIR=work)
    stack.start(redis_client)
    try:
        with serving(redis_url, prefix, work) as url:
            queue = client(url, "sqs").get_queue_url(QueueName=stack.settings.source_queue)["QueueUrl"]
            run = uuid.uuid4().hex[:8]
            records = [json.dumps(pipeline.dragon(run, index)) for index in range(args.records)]
            batches = [records[i : i + 10] for i in range(0, len(records), 10)]
            senders = 4
            began = time.perf_counter()

            def send(part: list[list[str]]) -> None:
                sqs = client(url, "sqs")
                for batch in part:
                    entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(batch)]
                    answer = sqs.send_message_batch(QueueUrl=queue, Entries=entries)
                    assert not answer.get("Failed"), answer["Failed"]

            threads = [threading.Thread(target=send, args=(batches[t::senders],)) for t in range(senders)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            sent = time.perf_counter() - began
            keys = Keys(prefix)
            deadline = time.monotonic() + 600
            while pipeline.terminal_count(redis_client, keys) < args.records:
                if time.monotonic() > deadline:
                    raise SystemExit("the dragon flow did not finish in 10 minutes")
                time.sleep(0.05)
            elapsed = time.perf_counter() - began
            succeeded = redis_client.zcard(keys.status("SUCCEEDED"))
        print(
            f"\ndragon flow through SQS SendMessageBatch (1 orchestrator, {args.workers} workers):"
            f" {args.records} records sent in {sent:.1f} s ({args.records / sent:.0f} msg/s);"
            f" {args.records / elapsed:.0f} executions/s end to end, {succeeded} SUCCEEDED"
        )
    finally:
        stack.stop()
        redis_client.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000, help="requests per measurement")
    parser.add_argument(
        "--threads", type=int, default=8, help="clients at once in the concurrent measurement"
    )
    parser.add_argument(
        "--executions",
        type=int,
        default=100_000,
        help="executions among which a rare machine is listed (0: skip)",
    )
    parser.add_argument("--records", type=int, default=2000, help="dragon records sent through SQS (0: skip)")
    parser.add_argument("--workers", type=int, default=2, help="workers of the dragon flow")
    args = parser.parse_args()
    with RedisServer() as server, tempfile.TemporaryDirectory() as work:
        with serving(server.url, "bench", work) as url:
            if args.requests:
                start_and_describe(url, args)
            if args.executions:
                list_rare(url, server.url, "bench", args)
        if args.records:
            dragon_flow_through_sqs(server.url, work, args)


if __name__ == "__main__":
    main()
