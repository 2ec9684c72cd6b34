"""StartExecution and DescribeExecution through boto3 against one ``redstep serve`` process.

Starts a private redis-server and one ``redstep serve`` (SigV4 checked), registers the
dragon pipeline's definition with CreateStateMachine, then measures, through unchanged boto3
clients on loopback:

- one client at a time: each request's latency (p50 / p95 / p99) and requests/s;
- ``--threads`` clients at once (one boto3 client per thread): requests/s and latency.

No orchestrator or worker runs: StartExecution commits the execution's first transition
and queues its first task, which is all the endpoint does; DescribeExecution then reads the
executions just started.

    python bench/api.py [--requests 2000] [--threads 8]
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import boto3
from botocore.config import Config
from pipeline import percentiles

from orchestrator.runtime.machines import dragon_pipeline_definition
from orchestrator.runtime.server import RedisServer, free_port

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


def client(url: str) -> Any:
    return boto3.client(
        "stepfunctions",
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000, help="requests per measurement")
    parser.add_argument(
        "--threads", type=int, default=8, help="clients at once in the concurrent measurement"
    )
    args = parser.parse_args()
    with RedisServer() as server, tempfile.TemporaryDirectory() as work:
        port = free_port()
        env = {
            **os.environ,
            "REDIS_URL": server.url,
            "REDSTEP_PREFIX": "bench",
            "REDSTEP_ACCESS_KEY_ID": KEY_ID,
            "REDSTEP_SECRET_ACCESS_KEY": SECRET,
            "REDSTEP_RUNTIME_DIR": work,
        }
        with Path(work, "serve.log").open("wb") as log:
            command = [sys.executable, "-m", "producer.cli", "serve", "--port", str(port)]
            process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, process)
            machine = client(url).create_state_machine(
                name="BenchPipeline",
                definition=dragon_pipeline_definition(),
                roleArn="arn:aws:iam::000000000000:role/bench",
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
        finally:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
