"""How long ``redstep doctor`` takes on a big installation: N finished and N/10 running executions.

A fresh private redis-server gets one real execution of each kind (a finished one and one
waiting on its queued job), copied N times under new names with every key and index entry the
commit writes; then :func:`orchestrator.runtime.doctor.examine` runs over all of it.

    python bench/doctor.py [N]      # default 100000
"""

from __future__ import annotations

import argparse
import json
import time

import redis

from orchestrator.protocol.keys import EVENT_FIELD
from orchestrator.runtime.client import Client
from orchestrator.runtime.doctor import examine
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.loop import Orchestrator
from orchestrator.runtime.server import RedisServer
from orchestrator.settings import Settings

MACHINE = {
    "StartAt": "Call",
    "States": {"Call": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:0:function:F", "End": True}},
}


def templates(r: redis.Redis, settings: Settings) -> tuple[str, str, str]:
    """A finished execution, and a running one whose job is queued; returns their names and the job id."""
    client, keys = Client(r, settings), Keys(settings.prefix)
    client.register_machine("One", MACHINE)
    client.start_execution("One", {"n": 0}, name="done")
    job = r.lpop(keys.task_queue).decode()
    [task] = json.loads(r.hget(Keys.rq_job(job), "data"))[2][0]
    report = {"type": "TaskSucceeded", "execution": "done", "token": task["token"], "output": {"ok": 1}}
    r.xadd(keys.events, {EVENT_FIELD: json.dumps(report)})
    Orchestrator(r, settings, "bench").run_once()
    client.start_execution("One", {"n": 1}, name="run")
    return "done", "run", r.lindex(keys.task_queue, 0).decode()


def copy(
    r: redis.Redis, keys: Keys, template: str, name: str, job: str | None, pipe: redis.client.Pipeline
) -> None:
    blob = r.hget(keys.execution(template), "execution").decode().replace(f'"{template}', f'"{name}')
    execution = json.loads(blob)
    pipe.hset(keys.execution(name), mapping={"execution": blob, "version": "1"})
    history = r.lrange(keys.history(template), 0, -1)
    pipe.rpush(keys.history(name), *history)
    pipe.zadd(keys.executions, {name: execution["startDate"]})
    pipe.zadd(keys.status(execution["status"]), {name: execution["startDate"]})
    if execution["status"] != "RUNNING":
        pipe.zadd(keys.closed, {name: execution["stopDate"]})
    if job is not None:
        data = r.hget(Keys.rq_job(job), "data").decode().replace(f'"{template}', f'"{name}')
        pipe.hset(Keys.rq_job(f"job-{name}"), "data", data)
        pipe.rpush(keys.task_queue, f"job-{name}")


def main(count: int) -> None:
    with RedisServer() as server:
        r = redis.Redis.from_url(server.url)
        settings = Settings(redis_url=server.url, prefix="bench")
        keys = Keys(settings.prefix)
        done, run, job = templates(r, settings)
        pipe = r.pipeline(transaction=False)
        for i in range(count):
            copy(r, keys, done, f"d{i}", None, pipe)
            if i % 10 == 0:
                copy(r, keys, run, f"r{i}", job, pipe)
            if i % 1000 == 999:
                pipe.execute()
        pipe.execute()
        started = time.perf_counter()
        found = examine(r, settings)
        elapsed = time.perf_counter() - started
        print(
            f"{found.executions} executions ({found.running} running) checked in {elapsed:.1f} s"
            f" ({found.executions / elapsed:,.0f}/s); {len(found.problems)} problem(s);"
            f" redis used_memory {r.info('memory')['used_memory_human']}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("count", nargs="?", type=int, default=100_000, help="finished executions to copy")
    main(parser.parse_args().count)
