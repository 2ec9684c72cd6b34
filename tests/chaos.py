"""The chaos driver: a whole stack whose processes are SIGKILLed at random while records flow.

:func:`run_chaos` starts orchestrators, workers and a subscriber (``python -m producer.cli``),
produces the records, kills a random orchestrator or worker every ``kill_interval`` seconds
and starts a new one in its place, until every execution is terminal; then it reads what the
stack left behind into a :class:`ChaosReport` whose ``problems`` say what went wrong.
The fault tests share the process helpers.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import redis

from orchestrator.runtime import doctor
from orchestrator.runtime.histories import history_range
from orchestrator.runtime.keys import Keys
from orchestrator.settings import Settings
from producer.produce import produce
from producer.records import validate_records
from tests.processes import stop, stop_all

SAMPLES = Path(__file__).resolve().parents[1] / "producer" / "data" / "dragons.json"
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def redstep_process(env: dict[str, str], *args: str, log: IO[bytes] | None = None) -> subprocess.Popen[bytes]:
    """Start ``python -m producer.cli ARGS`` with ``env``; stderr goes to ``log`` (else nowhere).

    In a session of its own, so :func:`stop` ends whatever it started along with it.
    """
    return subprocess.Popen(
        [sys.executable, "-m", "producer.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log if log is not None else subprocess.DEVNULL,
        start_new_session=True,
    )


# Recovery knobs short enough that a dead orchestrator's work is taken over within seconds;
# small source batches keep a run going long enough for a kill to land in its middle.
FAST_RECOVERY = {
    "REDSTEP_VISIBILITY_TIMEOUT_SECONDS": "2",
    "REDSTEP_CLAIM_IDLE_SECONDS": "2",
    "REDSTEP_BATCH_SIZE": "5",
}


@contextlib.contextmanager
def running_workers(env: dict[str, str], count: int = 2) -> Iterator[None]:
    """``count`` real worker processes for the duration of the block."""
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes += [redstep_process(env, "worker") for _ in range(count)]
        yield
    finally:
        stop_all(processes)


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


HOLD_FUNCTIONS = """
import os
import time
from pathlib import Path


def Hold(event, context):
    # Says it started (attempt-N holds the pid), then waits for the test's release-N file.
    folder = Path(event["dir"])
    (folder / f"attempt-{context.attempt}").write_text(str(os.getpid()))
    while not (folder / f"release-{context.attempt}").exists():
        time.sleep(0.02)
    return {"attempt": context.attempt, "pid": os.getpid()}
"""
"""A function file for ``--functions``: Hold runs until the test lets it finish."""


def hold_machine(**task_fields: Any) -> dict[str, Any]:
    """A one-state machine that runs Hold, with ``task_fields`` (Retry, HeartbeatSeconds...) added."""
    task = {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:000000000000:function:Hold", "End": True}
    return {"StartAt": "Hold", "States": {"Hold": {**task, **task_fields}}}


def events_settled(client: redis.Redis, keys: Keys) -> bool:
    """Whether the orchestrators consumed and acknowledged every event on the stream."""
    last = client.xrevrange(keys.events, count=1)
    if not last:
        return True
    groups = {g["name"].decode(): g for g in client.xinfo_groups(keys.events)}
    group = groups.get("orchestrators")
    return bool(group) and group["last-delivered-id"] == last[0][0] and group["pending"] == 0


def chaos_records(count: int, repeat_every: int = 10, seed: int = 7) -> list[dict[str, Any]]:
    """``count`` dragon records with unique names, except every ``repeat_every``-th repeats an earlier one."""
    samples = json.loads(SAMPLES.read_text())
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    for index in range(count):
        if index and repeat_every and index % repeat_every == 0:
            records.append(dict(rng.choice(records)))
            continue
        record = dict(samples[index % len(samples)])
        record["dragon_name_str"] = f"{record['dragon_name_str']}-{index}"
        records.append(record)
    return records


@dataclass
class ChaosReport:
    """What a chaos run did and what it left behind."""

    records: int
    unique: int
    kills: Counter[str] = field(default_factory=Counter)
    drain_seconds: float = 0.0
    executions: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    lease_recoveries: int = 0  # task attempts that failed as Lambda.Unknown and were retried
    lost: int = 0  # records with no terminal execution
    duplicated: int = 0  # extra executions, notifications or stored dragons
    problems: list[str] = field(default_factory=list)

    def figures(self) -> str:
        """One line per figure, for people."""
        return "\n".join(
            [
                f"records            {self.records} ({self.unique} unique names)",
                f"kills              {sum(self.kills.values())} ({dict(self.kills)})",
                f"lease recoveries   {self.lease_recoveries}",
                f"executions         {self.executions} {dict(self.statuses)}",
                f"lost               {self.lost}",
                f"duplicated         {self.duplicated}",
                f"time to drain      {self.drain_seconds:.1f} s",
                f"problems           {len(self.problems)}",
            ]
        )


@dataclass
class Stack:
    """The stack's processes, by role, each replaced by a fresh one when killed."""

    env: dict[str, str]
    logs: Path
    processes: dict[str, list[subprocess.Popen[bytes]]] = field(default_factory=dict)
    started: Counter[str] = field(default_factory=Counter)

    def start(self, role: str) -> subprocess.Popen[bytes]:
        self.started[role] += 1
        log = (self.logs / f"{role}-{self.started[role]}.log").open("wb")
        process = redstep_process(self.env, role, log=log)
        log.close()
        self.processes.setdefault(role, []).append(process)
        return process

    def kill_one(self, rng: random.Random) -> str:
        """SIGKILL a random process and start its replacement; returns its role."""
        role = rng.choice([r for r, ps in self.processes.items() for _ in ps])
        victim = rng.choice(self.processes[role])
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        self.processes[role].remove(victim)
        self.start(role)
        return role

    def stop_all(self) -> None:
        stop_all([p for processes in self.processes.values() for p in processes])


def run_chaos(
    redis_url: str,
    work_dir: Path,
    *,
    records: int = 250,
    orchestrators: int = 2,
    workers: int = 3,
    kill_interval: float = 1.0,
    max_kills: int | None = None,
    produce_per_second: float = 50.0,
    lease_seconds: float = 1.0,
    timeout: float = 300.0,
    seed: int = 1,
    prefix: str = "chaos",
) -> ChaosReport:
    """Run the stack under SIGKILLs until every execution is terminal, and check what it left.

    Args:
        redis_url: an empty Redis (the run writes under ``prefix``).
        work_dir: where the records file, the subscriber's output and process logs go.
        records: how many records to produce (one in ten repeats an earlier name).
        orchestrators: orchestrator processes kept running.
        workers: worker processes kept running.
        kill_interval: seconds between kills.
        max_kills: stop killing after this many (None: until the run drains).
        produce_per_second: the rate records are produced at while the kills go on, so the
            kills land in the middle of the run rather than after it.
        lease_seconds: the workers' lease; a dead worker's tasks fail this long after.
        timeout: give up waiting for the run to drain after this long.
        seed: seeds the choice of victims.
        prefix: the key prefix of the run.
    """
    rng = random.Random(seed)
    keys = Keys(prefix)
    produced = chaos_records(records)
    validated = validate_records(produced, "the chaos records")
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "REDSTEP_PREFIX": prefix,
        "PYTHONUNBUFFERED": "1",
        "REDSTEP_LEASE_SECONDS": str(lease_seconds),
        "REDSTEP_VISIBILITY_TIMEOUT_SECONDS": "2",
        "REDSTEP_CLAIM_IDLE_SECONDS": "2",
        "REDSTEP_BATCH_SIZE": "10",
        "REDSTEP_LOG_LEVEL": "WARNING",
    }
    client = redis.Redis.from_url(redis_url)
    stack = Stack(env, work_dir)
    heard = work_dir / "notifications.jsonl"
    report = ChaosReport(records=records, unique=len({r["dragon_name_str"] for r in produced}))
    with heard.open("wb") as out:
        subscriber = subprocess.Popen(
            [sys.executable, "-m", "producer.cli", "subscribe", "--json", "--replay"],
            env=env, stdout=out, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    try:
        for _ in range(orchestrators):
            stack.start("orchestrator")
        for _ in range(workers):
            stack.start("worker")
        settings = Settings(redis_url=redis_url, prefix=prefix)
        began = time.monotonic()
        sent = 0

        def finished() -> int:
            return sum(int(client.zcard(keys.status(s))) for s in TERMINAL)

        next_kill = time.monotonic() + kill_interval
        while sent < records or finished() < records:
            due = min(records, int((time.monotonic() - began) * produce_per_second) + 1)
            if due > sent:
                # Each slice its own key: a repeated record sent later is a new message, not a re-run.
                produce(client, settings, validated[sent:due], idempotency_key=f"chaos-{sent}")
                sent = due
            if time.monotonic() - began > timeout:
                report.problems.append(f"only {finished()} of {records} executions ended within {timeout}s")
                break
            if time.monotonic() >= next_kill and (
                max_kills is None or sum(report.kills.values()) < max_kills
            ):
                report.kills[stack.kill_one(rng)] += 1
                next_kill = time.monotonic() + kill_interval
            time.sleep(0.02)
        report.drain_seconds = time.monotonic() - began
        try:
            wait_until(lambda: line_count(heard) >= records, 30, "the subscriber to hear every outcome")
        except AssertionError as exc:
            report.problems.append(str(exc))
    finally:
        stack.stop_all()
        stop(subscriber)
    check(client, keys, produced, heard, report)
    client.close()
    return report


def line_count(path: Path) -> int:
    return sum(1 for line in path.read_bytes().splitlines() if line.strip())


def check(
    client: redis.Redis, keys: Keys, produced: list[dict[str, Any]], heard: Path, report: ChaosReport
) -> None:
    """Fill ``report`` with what the stack left behind and every guarantee it broke."""
    names = [n.decode() for n in client.zrange(keys.executions, 0, -1)]
    report.executions = len(names)
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hget(keys.execution(name), "execution")
    replies = pipe.execute()
    executions = {name: json.loads(replies[i]) for i, name in enumerate(names)}
    # A history finished a while ago may be compacted already: read it either way.
    histories = {name: history_range(client, keys.history(name), 0, -1) for name in names}
    report.statuses = Counter(e["status"] for e in executions.values())

    wanted = Counter(r["dragon_name_str"] for r in produced)
    got = Counter(e["input"]["dragon_name_str"] for e in executions.values())
    for name, count in wanted.items():
        if got[name] < count:
            report.lost += count - got[name]
            report.problems.append(f"{name}: {count} record(s) produced, {got[name]} execution(s)")
        elif got[name] > count:
            report.duplicated += got[name] - count
            report.problems.append(f"{name}: {count} record(s) produced, {got[name]} execution(s)")
    not_done = [n for n, e in executions.items() if e["status"] != "SUCCEEDED"]
    report.lost += sum(1 for n in not_done if executions[n]["status"] == "RUNNING")
    for name in not_done[:10]:
        report.problems.append(f"{name} ended {executions[name]['status']}: {executions[name].get('error')}")

    for name, history in histories.items():
        report.lease_recoveries += sum(
            1 for e in history if e["type"] == "LambdaFunctionFailed" and e.get("error") == "Lambda.Unknown"
        )
        problem = state_entered_twice(history)
        if problem:
            report.problems.append(f"{name}: {problem}")

    stored = {k.decode(): json.loads(v) for k, v in client.hgetall(keys.dragons).items()}
    if set(stored) != set(wanted):
        report.problems.append(f"the store holds {len(stored)} dragons, {len(wanted)} names were produced")
    inserted = Counter(
        n["MessageAttributes"]["dragon_name"]["Value"]
        for n in read_lines(heard)
        if n["Subject"] == "Record inserted"
    )
    twice = [name for name, count in inserted.items() if count > 1]
    report.duplicated += len(twice)
    report.problems += [f"{name} was inserted {inserted[name]} times" for name in twice[:10]]

    outcomes = Counter(n["MessageAttributes"]["execution"]["Value"] for n in read_lines(heard))
    for name in executions:
        if outcomes[name] != 1:
            report.problems.append(f"{name}: {outcomes[name]} outcome notification(s)")
            report.duplicated += max(0, outcomes[name] - 1)

    # And the doctor's word on everything stored: indexes, histories, nothing RUNNING unmoved.
    broken = [p for p in doctor.check(client, Settings(prefix=keys.prefix)) if p.fails]
    report.problems += [f"doctor: {p.subject} [{p.invariant}] {p.explanation}" for p in broken]


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def state_entered_twice(history: list[dict[str, Any]]) -> str:
    """Why ``history`` enters a state twice with no failure or retry recorded between, or ""."""
    entered_at: dict[str, int] = {}
    failed_since: set[str] = set()
    for event in history:
        kind = event["type"]
        if kind.endswith("Failed") or kind.endswith("TimedOut"):
            failed_since.update(entered_at)
        if kind.endswith("StateEntered"):
            state = event.get("name", "?")
            if state in entered_at and state not in failed_since:
                first = entered_at[state]
                return f"state {state} entered at events {first} and {event['id']} with no failure between"
            entered_at[state] = event["id"]
            failed_since.discard(state)
    return ""
