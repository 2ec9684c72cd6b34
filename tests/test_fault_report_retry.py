"""A report made while Redis is away is sent again once it is back: no Lambda.Unknown, no second run."""

from __future__ import annotations

import os
import time
from pathlib import Path

import redis

from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.server import RedisServer
from orchestrator.settings import Settings
from tests.chaos import redstep_process, wait_until
from tests.processes import stop_all

FUNCTIONS = str(Path(__file__).with_name("stack_functions.py"))
LAMBDA = "arn:aws:lambda:us-east-1:000000000000:function:"
SLEEP = {
    "StartAt": "Sleep",
    "States": {"Sleep": {"Type": "Task", "Resource": LAMBDA + "sleep_and_report", "End": True}},
}


def test_a_report_made_while_redis_is_down_lands_once_it_is_back(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    server = RedisServer(data_dir=data, aof=True, appendfsync="always").start()
    env = {
        **os.environ,
        "REDIS_URL": server.url,
        "REDSTEP_PREFIX": "t",
        # Short enough that a report lost for good would fail the task well within the test's wait.
        "REDSTEP_LEASE_SECONDS": "6",
        "REDSTEP_RECONNECT_MAX_SECONDS": "0.5",
    }
    settings = Settings(redis_url=server.url, prefix="t")
    processes = []
    try:
        with (tmp_path / "orchestrator.log").open("wb") as log:
            processes.append(redstep_process(env, "orchestrator", log=log))
        with (tmp_path / "worker.log").open("wb") as log:
            processes.append(redstep_process(env, "worker", "--functions", FUNCTIONS, log=log))
        client = Client(redis.Redis.from_url(server.url), settings)
        client.register_machine("Sleepy", SLEEP)
        name = client.start_execution("Sleepy", {"seconds": 2})
        # The worker leases a task as it starts running it.
        wait_until(lambda: client.redis.zcard(Keys("t").leases) >= 1, 60, "the worker to start the task")
        client.redis.close()
        # Redis goes away while the function runs and comes back after it returned and reported.
        server.kill()
        time.sleep(3)
        server = RedisServer(server.port, data_dir=data, aof=True, appendfsync="always").start()
        client = Client(redis.Redis.from_url(server.url), settings)
        described = client.wait(name, 60)
        history = client.history(name)
    finally:
        stop_all(processes)
        server.stop()
    types = [e["type"] for e in history]
    worker_log = (tmp_path / "worker.log").read_text(errors="replace")
    assert described["status"] == "SUCCEEDED", (described, types, worker_log[-3000:])
    assert types.count("LambdaFunctionStarted") == 1
    assert "LambdaFunctionFailed" not in types
