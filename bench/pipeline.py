"""The dragon pipeline through the real stack, against the same flow as a plain RQ chain.

Starts a private redis-server (unless ``--redis-url`` is given), then N orchestrator and W
worker processes, and measures:

* full load: N dragon records pushed in batches; executions/s from the first send to the
  last terminal execution, and each execution's end-to-end latency (send -> stopDate);
* one at a time: records sent one after another, each awaited on the notification channel;
* Redis commands per execution (INFO commandstats delta; commands a Lua script runs count);
* memory: VmRSS of every orchestrator and worker process, Redis used_memory.

Then, on the same Redis (flushed), the same 3-step flow as an RQ ``depends_on`` chain run by
W SimpleWorkers, and the ratio of the two. Last, the hand-off floor (bench/handoff_floor.py): the
same hops one at a time with no framework, so the one-at-a-time latency is read against what
this machine's round trips and wake-ups cost in the same run.

    python bench/pipeline.py [--records 5000] [--workers 2] [--orchestrators 1] [--redis-url URL]

``--peers`` runs bench/peers.py with the same options instead (Celery and Dramatiq as well, each
system with ``--records`` executions; needs the ``bench`` extra).

``--redis-url`` points at a Redis the benchmark may FLUSHDB: never one holding data you keep.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import handoff_floor
import redis
import rq_chain

from orchestrator.protocol.hops import TRACE_ENV
from orchestrator.runtime import doctor, heartbeats
from orchestrator.runtime.keys import STATUSES, Keys
from orchestrator.runtime.server import RedisServer
from orchestrator.runtime.sources import send_messages
from orchestrator.runtime.store import Store
from orchestrator.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SEND_BATCH = 500
TERMINAL = [s for s in STATUSES if s != "RUNNING"]
ORCHESTRATOR_COMMAND = (
    "from orchestrator.runtime.loop import run_orchestrator; "
    "from orchestrator.settings import Settings; run_orchestrator(Settings())"
)


def dragon(run: str, index: int) -> dict[str, Any]:
    """A dragon record with a name no other record of the run has."""
    return {
        "dragon_name_str": f"Dragon {run}-{index}",
        "description_str": "A bench dragon that breathes fire.",
        "family_str": "red",
        "location_city_str": "Seattle",
        "location_state_str": "WA",
        "location_country_str": "USA",
        "location_neighborhood_str": "Fremont",
        "reportingPhoneNumber": "15555555555",
        "confirmationRequired": False,
    }


def percentiles(seconds: list[float]) -> str:
    """p50 / p95 / p99 in milliseconds."""
    if len(seconds) < 2:
        return "-"
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return f"{cuts[49] * 1000:.2f} / {cuts[94] * 1000:.2f} / {cuts[98] * 1000:.2f}"


def command_stats(redis_client: redis.Redis) -> dict[str, int]:
    """Calls per command since the server started (or since CONFIG RESETSTAT)."""
    return {
        name.removeprefix("cmdstat_"): int(row["calls"])
        for name, row in redis_client.info("commandstats").items()
    }


def redis_cpu(redis_client: redis.Redis) -> float:
    """CPU seconds the Redis server has used so far."""
    info = redis_client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def command_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """The process's resident set, in MiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Stack:
    """redstep's orchestrators and workers as child processes on one Redis."""

    def __init__(
        self,
        redis_url: str,
        prefix: str,
        orchestrators: int,
        workers: int,
        log: Path,
        functions: list[Path] | None = None,
        hops: Path | None = None,
    ) -> None:
        self.env = {**os.environ, "REDIS_URL": redis_url, "REDSTEP_PREFIX": prefix}
        if hops is not None:  # every process notes its hops' times there (orchestrator.protocol.hops)
            self.env[TRACE_ENV] = str(hops)
        self.settings = Settings(redis_url=redis_url, prefix=prefix)
        self.counts = (orchestrators, workers)
        self.log = log
        self.functions = functions or []  # files of functions the workers load besides the dragons'
        self.orchestrators: list[subprocess.Popen[bytes]] = []
        self.workers: list[subprocess.Popen[bytes]] = []

    def start(self, redis_client: redis.Redis, timeout: float = 30.0) -> None:
        """Start every process and wait until each orchestrator beats and each worker registered."""
        orchestrator = [sys.executable, "-c", ORCHESTRATOR_COMMAND]
        worker = [sys.executable, "-m", "worker", "--logging-level", "WARNING"]
        worker += [argument for path in self.functions for argument in ("--functions", str(path))]
        self.orchestrators = [self.spawn(orchestrator) for _ in range(self.counts[0])]
        self.workers = [self.spawn(worker) for _ in range(self.counts[1])]
        keys = Keys(self.settings.prefix)
        deadline = time.monotonic() + timeout
        while True:
            beating = len(heartbeats.alive(redis_client, keys))
            registered = redis_client.scard("rq:workers")
            if beating >= self.counts[0] and registered >= self.counts[1]:
                return
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                raise RuntimeError(f"the stack did not start; see {self.log}")
            time.sleep(0.05)

    def spawn(self, command: list[str]) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as sink:
            return subprocess.Popen(command, env=self.env, cwd=ROOT, stdout=sink, stderr=sink)

    @property
    def processes(self) -> list[subprocess.Popen[bytes]]:
        return self.orchestrators + self.workers

    def memory(self) -> tuple[list[float], list[float]]:
        """VmRSS (MiB) of each orchestrator and each worker."""
        return [rss_mib(p.pid) for p in self.orchestrators], [rss_mib(p.pid) for p in self.workers]

    def cpu(self) -> tuple[list[float], list[float]]:
        """CPU seconds used so far by each orchestrator and each worker."""
        return [cpu_seconds(p.pid) for p in self.orchestrators], [cpu_seconds(p.pid) for p in self.workers]

    def stop(self) -> None:
        stop_all(self.processes)


def stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process, then SIGKILL what has not exited after a few seconds."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def full_load(redis_client: redis.Redis, settings: Settings, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Send every record in batches and wait until all executions are terminal."""
    keys = Keys(settings.prefix)
    sent_at: dict[str, float] = {}
    begin = time.time()
    for start in range(0, len(records), SEND_BATCH):
        ids = send_messages(
            redis_client, settings, settings.source_queue, records[start : start + SEND_BATCH]
        )
        now = time.time()
        sent_at.update(dict.fromkeys(ids, now))
    polls = 1
    while terminal_count(redis_client, keys) < len(records):
        polls += 1
        time.sleep(0.01)
    loaded: dict[str, tuple[dict[str, Any] | None, int]] = {}
    store = Store(redis_client, keys)
    names = list(sent_at)
    for start in range(0, len(names), 1000):
        loaded.update(store.load(names[start : start + 1000]))
    stops = {name: execution["stopDate"] for name, (execution, _) in loaded.items() if execution}
    statuses = [execution["status"] for execution, _ in loaded.values() if execution]
    seconds = max(stops.values()) - begin
    return {
        "executions": len(stops),
        "seconds": seconds,
        "throughput": len(stops) / seconds,
        "latencies": [stops[name] - sent_at[name] for name in stops],
        "succeeded": statuses.count("SUCCEEDED"),
        # What the benchmark itself asked, to take out of the stack's count.
        "own_commands": {"zcard": polls * len(TERMINAL), "hmget": len(names)},
    }


def terminal_count(redis_client: redis.Redis, keys: Keys) -> int:
    pipe = redis_client.pipeline(transaction=False)
    for status in TERMINAL:
        pipe.zcard(keys.status(status))
    return sum(pipe.execute())


def one_at_a_time(
    redis_client: redis.Redis,
    settings: Settings,
    records: list[dict[str, Any]],
    ends: dict[str, tuple[float, float]] | None = None,
) -> list[float]:
    """Send each record once the one before it was notified; each one's send -> notification time.

    ``ends``, when given, receives each notified execution's (sent, notification received) times.
    """
    keys = Keys(settings.prefix)
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(keys.topic(settings.topic))
    latencies = []
    for record in records:
        name = record["dragon_name_str"]
        sent = time.time()
        [execution] = send_messages(redis_client, settings, settings.source_queue, [record])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=1.0)
            if message and message["type"] == "message":
                attribute = json.loads(message["data"])["MessageAttributes"]["dragon_name"]
                # SNS delivers Type/Value; Publish takes DataType/StringValue.
                if attribute.get("Value", attribute.get("StringValue")) == name:
                    received = time.time()
                    latencies.append(received - sent)
                    if ends is not None:
                        ends[execution] = (sent, received)
                    break
    pubsub.close()
    return latencies


HOPS = (
    "send -> execution started (committed)",
    "committed -> task claimed by a worker",  # < 0: the worker woke before the commit's reply came
    "claimed -> function begins (RQ's job handling)",
    "function runs",
    "function ends -> report appended",
    "report appended -> transition committed",
    "last commit -> notification received",
)


def hop_breakdown(trace: Path, ends: dict[str, tuple[float, float]]) -> dict[str, list[float]]:
    """Each hop's time per execution (seconds; a hop a task takes twice is summed), from the trace files.

    The processes noted when each commit landed, and when each task job was claimed, its
    function began and ended and its report was appended (orchestrator.protocol.hops); the
    benchmark noted each execution's send and notification. Executions whose trace is not
    complete (two worker hops, three commits) are left out.
    """
    commits: dict[str, list[float]] = {}
    claimed: dict[str, float] = {}
    reported: dict[str, float] = {}
    ran: dict[str, list[tuple[str, float, float]]] = {}
    for path in trace.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            note = json.loads(line)
            kind, at = note["kind"], note["at"]
            if kind == "committed":
                for name in note["executions"]:
                    if name in ends:
                        commits.setdefault(name, []).append(at)
            elif kind == "claimed":
                claimed[note["job"]] = at
            elif kind == "reported":
                reported[note["job"]] = at
            elif kind == "ran" and note["execution"] in ends:
                ran.setdefault(note["execution"], []).append((note["job"], note["began"], at))
    hops: dict[str, list[float]] = {hop: [] for hop in HOPS}
    for name, (sent, received) in ends.items():
        times, tasks = sorted(commits.get(name, [])), sorted(ran.get(name, []), key=lambda t: t[1])
        if len(times) != len(tasks) + 1 or not tasks or any(t[0] not in reported for t in tasks):
            continue
        spans = [times[0] - sent, 0.0, 0.0, 0.0, 0.0, 0.0, received - times[-1]]
        for before, (job, began, ended), after in zip(times, tasks, times[1:], strict=False):
            spans[1] += claimed[job] - before
            spans[2] += began - claimed[job]
            spans[3] += ended - began
            spans[4] += reported[job] - ended
            spans[5] += after - reported[job]
        for hop, span in zip(HOPS, spans, strict=True):
            hops[hop].append(span)
    return hops


def print_hops(hops: dict[str, list[float]], total: list[float]) -> None:
    """p50 of each hop, one at a time, and the p50 of the whole for comparison."""
    counted = len(next(iter(hops.values()), []))
    if not counted:
        print("\nno complete hop trace (was REDSTEP_TRACE_HOPS honoured?)")
        return
    print(f"\nwhere one-at-a-time latency goes, p50 ms over {counted} executions (worker hops: both tasks)")
    width = max(len(hop) for hop in hops)
    for hop, spans in hops.items():
        print(f"  {hop:{width}}  {statistics.median(spans) * 1000:7.3f}")
    sums = [sum(parts) for parts in zip(*hops.values(), strict=True)]
    print(f"  {'sum of the hops':{width}}  {statistics.median(sums) * 1000:7.3f}")
    print(f"  {'send -> notification (measured)':{width}}  {statistics.median(total) * 1000:7.3f}")


@contextmanager
def redis_at(url: str | None) -> Iterator[str]:
    """The URL given, or that of a private redis-server for the run."""
    if url:
        yield url
        return
    with RedisServer() as server:
        yield server.url


def run_redstep(url: str, args: argparse.Namespace, log: Path) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    client.flushdb()
    trace = log.parent / "hops" if getattr(args, "hops", False) else None
    stack = Stack(url, "bench", args.orchestrators, args.workers, log, hops=trace)
    stack.start(client)
    try:
        run = uuid.uuid4().hex[:8]
        one_at_a_time(client, stack.settings, [dragon(run + "w", i) for i in range(20)])  # warm up
        client.config_resetstat()
        before, cpu_before, server_before = command_stats(client), stack.cpu(), redis_cpu(client)
        loaded = full_load(client, stack.settings, [dragon(run, i) for i in range(args.records)])
        delta = command_delta(before, command_stats(client))
        cpu = [
            [b - a for a, b in zip(*pair, strict=True)] for pair in zip(cpu_before, stack.cpu(), strict=True)
        ]
        cpu.append([redis_cpu(client) - server_before])
        delta["info"] = delta.get("info", 0) - 1
        for name, calls in loaded.pop("own_commands").items():
            delta[name] = delta.get(name, 0) - calls
        orchestrator_rss, worker_rss = stack.memory()
        ends: dict[str, tuple[float, float]] = {}
        singles = [dragon(run + "s", i) for i in range(args.single)]
        single = one_at_a_time(client, stack.settings, singles, ends)
        used_memory = int(client.info("memory")["used_memory"])
        # A fast run that broke an invariant is no result: the doctor's word comes with the figures.
        broken = [p for p in doctor.check(client, stack.settings) if p.fails]
    finally:
        stack.stop()
        client.close()
    for problem in broken:
        print(f"doctor: {problem.subject} [{problem.invariant}] {problem.explanation}", file=sys.stderr)
    if broken:
        raise SystemExit(f"the run left {len(broken)} broken invariant(s) behind; its figures do not count")
    return {
        **loaded,
        "single": single,
        "commands": delta,
        "orchestrator_rss": orchestrator_rss,
        "worker_rss": worker_rss,
        "used_memory": used_memory,
        "cpu": cpu,
        "hops": hop_breakdown(trace, ends) if trace is not None else None,
    }


def run_rq(url: str, args: argparse.Namespace, log: Path) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    client.flushdb()
    workers = rq_chain.start_workers(url, args.workers, log)
    try:
        rq_chain.wait_for_workers(client, args.workers)
        chain = rq_chain.Chain(client)
        run = uuid.uuid4().hex[:8]
        chain.run_one_at_a_time([dragon(run + "w", i) for i in range(20)])
        client.config_resetstat()
        before, cpu_before, server_before = (
            command_stats(client),
            [cpu_seconds(p.pid) for p in workers],
            redis_cpu(client),
        )
        loaded = chain.run_load([dragon(run, i) for i in range(args.rq_executions)])
        delta = command_delta(before, command_stats(client))
        cpu = [[], [cpu_seconds(p.pid) - a for p, a in zip(workers, cpu_before, strict=True)]]
        cpu.append([redis_cpu(client) - server_before])
        rss = [rss_mib(p.pid) for p in workers]
        single = chain.run_one_at_a_time([dragon(run + "s", i) for i in range(args.single)])
    finally:
        stop_all(workers)
        client.close()
    return {
        "executions": loaded.executions,
        "throughput": loaded.throughput,
        "latencies": loaded.latencies,
        "single": single.latencies,
        "commands": delta,
        "worker_rss": rss,
        "cpu": cpu,
    }


def cpu_per(result: dict[str, Any], role: int) -> str:
    """CPU milliseconds per execution of each process of a role (0 orchestrators, 1 workers, 2 Redis)."""
    return " ".join(f"{1000 * seconds / result['executions']:.2f}" for seconds in result["cpu"][role])


def report(args: argparse.Namespace, ours: dict[str, Any], chain: dict[str, Any], floor: list[float]) -> None:
    def per_execution(commands: dict[str, int], executions: int, name: str | None = None) -> str:
        total = commands.get(name, 0) if name else sum(commands.values())
        return f"{total / max(executions, 1):.2f}"

    rows = [
        ("executions", ours["executions"], chain["executions"]),
        ("throughput (exec/s)", f"{ours['throughput']:.0f}", f"{chain['throughput']:.0f}"),
        ("full-load latency p50/p95/p99 ms", percentiles(ours["latencies"]), percentiles(chain["latencies"])),
        ("one-at-a-time latency p50/p95/p99 ms", percentiles(ours["single"]), percentiles(chain["single"])),
        (
            "Redis commands / execution",
            per_execution(ours["commands"], ours["executions"]),
            per_execution(chain["commands"], chain["executions"]),
        ),
        (
            "  of which EVALSHA / execution",
            per_execution(ours["commands"], ours["executions"], "evalsha"),
            per_execution(chain["commands"], chain["executions"], "evalsha"),
        ),
        ("orchestrator RSS MiB", " ".join(f"{m:.0f}" for m in ours["orchestrator_rss"]), "-"),
        (
            "worker RSS MiB",
            " ".join(f"{m:.0f}" for m in ours["worker_rss"]),
            " ".join(f"{m:.0f}" for m in chain["worker_rss"]),
        ),
        ("orchestrator CPU ms / execution", cpu_per(ours, 0), "-"),
        ("worker CPU ms / execution", cpu_per(ours, 1), cpu_per(chain, 1)),
        ("redis-server CPU ms / execution", cpu_per(ours, 2), cpu_per(chain, 2)),
        ("Redis used_memory MiB (after run)", f"{ours['used_memory'] / 2**20:.1f}", "-"),
    ]
    print(f"\n{args.orchestrators} orchestrator(s), {args.workers} worker process(es), {os.cpu_count()} CPUs")
    width = max(len(r[0]) for r in rows)
    print(f"{'':{width}}  {'redstep':>24}  {'RQ chain':>24}")
    for label, a, b in rows:
        print(f"{label:{width}}  {a!s:>24}  {b!s:>24}")
    print(f"\nthroughput ratio redstep / RQ chain: {ours['throughput'] / chain['throughput']:.1f}x")
    print(f"redstep succeeded: {ours['succeeded']} of {args.records}")
    if floor:
        added = statistics.median(ours["single"]) - statistics.median(floor)
        print(f"hand-off floor one at a time (bench/handoff_floor.py), p50/p95/p99 ms: {percentiles(floor)}")
        print(f"  what redstep adds to it at the p50: {1000 * added:.2f} ms")
    if ours.get("hops") is not None:
        print_hops(ours["hops"], ours["single"])
    for title, result in (("redstep", ours), ("RQ chain", chain)):
        commands, executions = result["commands"], result["executions"]
        top = sorted(commands.items(), key=lambda kv: -kv[1])[:12]
        print(f"{title} commands per execution: " + ", ".join(f"{k} {v / executions:.2f}" for k, v in top))


def run_grid(url: str, args: argparse.Namespace, log: Path) -> None:
    """Full-load throughput for 1 and 2 orchestrators with 2 and 4 workers, and how busy Redis was."""
    rows = []
    for orchestrators in (1, 2):
        for workers in (2, 4):
            cell = argparse.Namespace(**{**vars(args), "orchestrators": orchestrators, "workers": workers})
            cell.single, cell.hops = 0, False
            result = run_redstep(url, cell, log)
            redis_seconds = result["cpu"][2][0]
            rows.append(
                (
                    orchestrators,
                    workers,
                    result["throughput"],
                    100 * redis_seconds / result["seconds"],
                    sum(result["cpu"][0]) * 1000 / result["executions"],
                    sum(result["cpu"][1]) * 1000 / result["executions"],
                    redis_seconds * 1000 / result["executions"],
                )
            )
    print(f"\n{args.records} records under full load, {os.cpu_count()} CPUs")
    print("orchestrators  workers  exec/s  Redis CPU %  CPU ms/exec: orchestrators  workers  redis-server")
    for orchestrators, workers, throughput, busy, o_ms, w_ms, r_ms in rows:
        print(
            f"{orchestrators:>13}  {workers:>7}  {throughput:>6.0f}  {busy:>11.0f}"
            f"  {o_ms:>26.2f}  {w_ms:>7.2f}  {r_ms:>12.2f}"
        )


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, run both benchmarks, print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=5000, help="records under full load")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (both systems)")
    parser.add_argument("--orchestrators", type=int, default=1)
    parser.add_argument("--single", type=int, default=200, help="records sent one at a time")
    parser.add_argument("--rq-executions", type=int, default=1000, help="RQ chain executions under full load")
    parser.add_argument("--redis-url", default=None, help="a Redis the benchmark may FLUSHDB")
    parser.add_argument(
        "--no-hops",
        dest="hops",
        action="store_false",
        help="no per-hop breakdown: the processes note no timestamps (REDSTEP_TRACE_HOPS unset)",
    )
    parser.add_argument(
        "--peers",
        action="store_true",
        help="run bench/peers.py instead: Celery and Dramatiq too, --records executions each",
    )
    parser.add_argument(
        "--grid",
        action="store_true",
        help="redstep only: full-load throughput and Redis CPU for 1/2 orchestrators x 2/4 workers",
    )
    args = parser.parse_args(argv)
    if args.peers:
        import peers  # here, not at the top: peers imports this module

        peers.run(args, skip=set())
        return
    with tempfile.TemporaryDirectory(prefix="redstep-bench-") as scratch, redis_at(args.redis_url) as url:
        log = Path(scratch) / "processes.log"
        try:
            if args.grid:
                run_grid(url, args, log)
                return
            ours = run_redstep(url, args, log)
            chain = run_rq(url, args, log)
            redis.Redis.from_url(url).flushdb()
            floor = handoff_floor.one_at_a_time(url, args.single, args.workers) if args.single > 1 else []
        except Exception:
            print(log.read_text()[-4000:] if log.exists() else "", file=sys.stderr)
            raise
        report(args, ours, chain, floor)


if __name__ == "__main__":
    main()
