"""Run conformance cases on a real stack: an orchestrator thread and worker processes on Redis.

The local runner is the reference here: a case run on the stack must give what the same
case gives in-process, once the values AWS itself leaves open (request ids, stack traces,
start times; the case's ``nondeterministic`` pointers) are set aside.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
import redis
from rq import Queue, Worker

from orchestrator.asl.definition import StateMachine
from orchestrator.asl.errors import DefinitionError
from orchestrator.local import LocalRunner
from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import Keys
from orchestrator.runtime.loop import run_orchestrator
from orchestrator.settings import Settings
from tests.conformance.cases import FUNCTIONS
from tests.processes import stop_all

ROOT = Path(__file__).resolve().parents[2]
CASE_FUNCTIONS = Path(__file__).resolve().with_name("cases.py")

SAMPLE_EVERY = 8
"""Every this-many-th eligible case of a category (in id order, from the first) is sampled."""

LONGEST_VIRTUAL_SECONDS = 2.0
"""Cases whose execution lasts longer than this on the local runner's virtual clock are left out."""

MASKED = "<not compared>"
LAMBDA_ERROR_VOLATILE = ("requestId", "stackTrace")


@dataclass
class Stack:
    """A running stack: the client to talk to it and the worker processes under it."""

    client: Client
    workers: list[subprocess.Popen[bytes]]
    logs: list[Path]

    def worker_pids(self) -> set[int]:
        """The process ids of the workers."""
        return {worker.pid for worker in self.workers}

    def logs_tail(self, characters: int = 3000) -> str:
        """The end of every worker's log, for a failing assertion's message."""
        return "\n".join(f"--- {log.name}\n{log.read_text()[-characters:]}" for log in self.logs)


def run_to_end(
    stack: Stack, definition: dict[str, Any], input: Any, prefix: str
) -> tuple[dict[str, Any], list[str]]:
    """Register ``definition`` as a new machine named after ``prefix``, run it on ``input`` on the
    stack to its end; the execution as DescribeExecution gives it, and its history's event types.

    A run that does not end within two minutes fails the test, with the workers' logs.
    """
    machine = f"{prefix}-{uuid.uuid4().hex[:6]}"
    stack.client.register_machine(machine, definition)
    name = stack.client.start_execution(machine, input)
    try:
        described = stack.client.wait(name, timeout=120.0)
    except TimeoutError as exc:
        pytest.fail(f"{exc}\n{stack.logs_tail()}")
    return described, [event["type"] for event in stack.client.history(name)]


@contextmanager
def running_stack(
    settings: Settings,
    env: dict[str, str],
    functions: Sequence[Path],
    log_dir: Path,
    workers: int = 2,
    ready_timeout: float = 30.0,
) -> Iterator[Stack]:
    """An orchestrator (in a thread) and ``workers`` worker processes, until the block ends.

    Args:
        settings: where Redis is and the key prefix; the workers get the same through ``env``.
        env: the environment of the worker processes (REDIS_URL, REDSTEP_PREFIX).
        functions: the Python files each worker loads with ``--functions``.
        log_dir: where each worker's stderr goes.
        workers: how many worker processes to start.
        ready_timeout: how long the workers may take to register with RQ.

    Raises:
        TimeoutError: when the workers have not all registered by ``ready_timeout``.
    """
    stop = threading.Event()
    orchestrator = threading.Thread(
        target=run_orchestrator, args=(settings, stop), kwargs={"consumer": "stack-test"}, daemon=True
    )
    orchestrator.start()
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    handles: list[IO[bytes]] = []
    connection = redis.Redis.from_url(settings.redis_url)
    try:
        for index in range(workers):
            name = f"stack-worker-{index}-{uuid.uuid4().hex[:6]}"
            command = [sys.executable, "-m", "worker", "--name", name, "--logging-level", "WARNING"]
            for spec in functions:
                command += ["--functions", str(spec)]
            log = log_dir / f"{name}.log"
            handle = log.open("wb")
            handles.append(handle)
            logs.append(log)
            processes.append(subprocess.Popen(command, env=env, cwd=ROOT, stdout=handle, stderr=handle))
        stack = Stack(Client(connection, settings), processes, logs)
        wait_for_workers(connection, settings, workers, ready_timeout, stack)
        yield stack
    finally:
        stop.set()
        stop_all(processes)
        orchestrator.join(timeout=10)
        for handle in handles:
            handle.close()
        connection.close()


def stack_settings(redis_url: str, prefix: str) -> tuple[Settings, dict[str, str]]:
    """Settings for a stack under ``prefix`` on an emptied server, and its workers' environment."""
    connection = redis.Redis.from_url(redis_url)
    connection.flushall()
    connection.close()
    settings = Settings(redis_url=redis_url, prefix=prefix, poll_interval_seconds=0.01)
    env = {**os.environ, "REDIS_URL": redis_url, "REDSTEP_PREFIX": prefix, "PYTHONUNBUFFERED": "1"}
    return settings, env


def wait_for_workers(
    connection: redis.Redis, settings: Settings, count: int, timeout: float, stack: Stack
) -> None:
    """Return once ``count`` workers listen on the task queue; a worker that exits fails at once."""
    queue = Queue(Keys(settings.prefix).task_queue_name, connection=connection)
    deadline = time.monotonic() + timeout
    while len(Worker.all(queue=queue)) < count:
        exited = [p.pid for p in stack.workers if p.poll() is not None]
        if exited or time.monotonic() > deadline:
            raise TimeoutError(f"workers not ready (exited: {exited})\n{stack.logs_tail()}")
        time.sleep(0.05)


# -- which cases -------------------------------------------------------------------------------


def virtual_seconds(case: dict[str, Any]) -> float:
    """How long the case's execution lasts on the local runner's virtual clock, started now."""
    start = time.time()
    try:
        machine = StateMachine.parse(case["definition"], name="Timing")
    except DefinitionError:
        return 0.0
    result = LocalRunner(machine, FUNCTIONS).run(case["input"], start=start)
    return max((event["timestamp"] for event in result.history), default=start) - start


def calls_wait_60_seconds(case: dict[str, Any]) -> bool:
    """Whether the case calls ``wait_60_seconds`` (named in its definition or its input).

    Its stand-in in cases.py returns at once, and only the local runner's virtual clock
    counts the 60 seconds, so such a case cannot give the same result on a real stack.
    """
    return "wait_60_seconds" in json.dumps([case["definition"], case["input"]])


def takes_real_time(case: dict[str, Any]) -> bool:
    """Whether the case would hold the stack for real: long waits, back-off or timeouts."""
    return virtual_seconds(case) > LONGEST_VIRTUAL_SECONDS


def sample_cases(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cases to run on the stack, chosen by a fixed rule.

    1. Of each category's cases that neither take real time nor call ``wait_60_seconds``,
       in id order, every ``SAMPLE_EVERY``-th from the first.
    2. For each state type (``state:*`` feature) the sample still lacks, the first such
       case in corpus order.
    3. For each category still absent (all its cases take real time), its quickest case
       that does not call ``wait_60_seconds``.
    """
    runnable = [case for case in cases if not calls_wait_60_seconds(case)]
    seconds = {case["id"]: virtual_seconds(case) for case in runnable}
    eligible = [case for case in runnable if seconds[case["id"]] <= LONGEST_VIRTUAL_SECONDS]
    by_category: dict[str, list[dict[str, Any]]] = {}
    for case in sorted(eligible, key=lambda c: (c["category"], c["id"])):
        by_category.setdefault(case["category"], []).append(case)
    sample = [case for group in by_category.values() for case in group[::SAMPLE_EVERY]]
    covered = {feature for case in sample for feature in case.get("features", [])}
    for case in eligible:
        missing = {f for f in case.get("features", []) if f.startswith("state:")} - covered
        if missing:
            sample.append(case)
            covered |= set(case.get("features", []))
    present = {case["category"] for case in sample}
    for category in sorted({case["category"] for case in runnable} - present):
        in_category = [case for case in runnable if case["category"] == category]
        sample.append(min(in_category, key=lambda c: (seconds[c["id"]], c["id"])))
    return sample


# -- running and comparing ---------------------------------------------------------------------


def local_result(case: dict[str, Any], machine_name: str, execution_name: str) -> dict[str, Any]:
    """The case run by the local runner, under the same machine and execution names as on the stack."""
    try:
        machine = StateMachine.parse(case["definition"], name=machine_name)
    except DefinitionError as exc:
        return invalid_result(case, exc)
    result = LocalRunner(machine, FUNCTIONS).run(case["input"], name=execution_name, start=time.time())
    return result_line(case, result.status, result.output, result.error, result.cause, result.history)


def invalid_result(case: dict[str, Any], exc: DefinitionError) -> dict[str, Any]:
    """The result line of a case whose definition is refused."""
    return result_line(case, "INVALID_DEFINITION", None, None, str(exc), [])


def result_line(
    case: dict[str, Any], status: str, output: Any, error: str | None, cause: str | None, history: list[Any]
) -> dict[str, Any]:
    """One line of the JSONL that check.py scores."""
    return {
        "id": case["id"],
        "status": status,
        "output": output,
        "error": error,
        "cause": cause,
        "history": [{"type": e["type"], **({"name": e["name"]} if "name" in e else {})} for e in history],
    }


def start_on_stack(
    client: Client, case: dict[str, Any], machine_name: str, execution_name: str
) -> DefinitionError | None:
    """Register the case's definition and start its execution; the error when the definition is refused."""
    try:
        client.register_machine(machine_name, case["definition"])
    except DefinitionError as exc:
        return exc
    client.start_execution(machine_name, case["input"], name=execution_name)
    return None


def stack_result(client: Client, case: dict[str, Any], execution_name: str, timeout: float) -> dict[str, Any]:
    """The finished execution's result line."""
    described = client.wait(execution_name, timeout=timeout)
    history = client.history(execution_name)
    return result_line(
        case, described["status"], described["output"], described["error"], described["cause"], history
    )


def comparable(case: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with what may differ between any two runs set aside.

    That is: the values at the case's ``nondeterministic`` pointers, and the request id and
    stack trace inside Lambda error documents (which name the process that ran the function).
    History is compared in order, or as a multiset where the case says its order is free
    (Map and Parallel).
    """
    view = copy.deepcopy(result)
    view = _without_volatile_lambda_fields(view)
    for pointer in case.get("nondeterministic") or []:
        _mask(view, [part.replace("~1", "/").replace("~0", "~") for part in pointer.split("/")[1:]])
    pairs = [(e["type"], e.get("name")) for e in view.pop("history")]
    view["history"] = sorted(Counter(pairs).items()) if case.get("history_match") == "multiset" else pairs
    return view


def _without_volatile_lambda_fields(value: Any) -> Any:
    if isinstance(value, dict):
        if "errorType" in value:
            return {
                k: _without_volatile_lambda_fields(v)
                for k, v in value.items()
                if k not in LAMBDA_ERROR_VOLATILE
            }
        return {k: _without_volatile_lambda_fields(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_volatile_lambda_fields(v) for v in value]
    if isinstance(value, str) and value.startswith("{") and "errorType" in value:
        try:
            document = json.loads(value)
        except ValueError:
            return value
        return _without_volatile_lambda_fields(document)
    return value


def _mask(view: Any, parts: list[str]) -> None:
    *parents, last = parts
    node = view
    for part in parents:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return
    if isinstance(node, dict) and last in node:
        node[last] = MASKED
    elif isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = MASKED
