"""One scrape: the counters' hash and what Redis already holds, read in one pipeline.

The pipeline reads the counters, the clock, the queue, worker and state machine indexes, and
each queue's depth, dead letters and oldest entry, each worker's liveness and RQ state and
each machine's running executions, for the queues, workers and machines the previous scrape
found; only when those names changed is a second pipeline needed. Nothing is scanned: queues,
workers and machines come from the sets redstep keeps of them.

Running executions are not a counter's sum: an execution started by a process that did not
count (metrics off, or the counters reset since) would be taken off at its end without ever
having been added. They are each machine's index of running executions (runtime.execution_index),
which the commit that moves an execution writes whether anyone counts or not; only while that
index is first built does the gauge fall back to the counter, shown no lower than 0.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from orchestrator.protocol.decoding import lossless_text
from orchestrator.protocol.metrics import DURATION_BUCKETS, INF, metrics_key, parse_field
from orchestrator.runtime import execution_index
from orchestrator.runtime.keys import GROUP, Keys
from orchestrator.settings import Settings

RQ_WORKER_PREFIX = "rq:worker:"
INDEX_REPLIES = 7
"""The replies of a scrape's first pipeline before the queues', workers' and machines' numbers."""
Counts = dict[tuple[str, tuple[str, ...]], int]
"""Counter values by metric and label values."""

# counter field -> (metric name without _total, help, label names)
COUNTERS = {
    "executions_started": ("redstep_executions_started", "Executions started.", ("state_machine",)),
    "executions_finished": (
        "redstep_executions_finished",
        "Executions finished, by how they ended.",
        ("state_machine", "status"),
    ),
    "state_transitions": ("redstep_state_transitions", "States entered.", ("state_machine",)),
    "task_failures": (
        "redstep_task_failures",
        "Tasks a worker ran that failed, by error (an ASL or Lambda error, else other).",
        ("function", "error"),
    ),
    "task_retries": ("redstep_task_retries", "Task attempts scheduled by a Retry.", ("function",)),
    "api_requests": (
        "redstep_api_requests",
        "AWS API requests answered, by service, action and HTTP status.",
        ("service", "action", "code"),
    ),
}
# histogram field stem -> (metric name, help, label names)
HISTOGRAMS = {
    "execution_duration": (
        "redstep_execution_duration_seconds",
        "Start to stop of finished executions.",
        ("state_machine",),
    ),
    "task_duration": ("redstep_task_duration_seconds", "How long a task's function ran.", ("function",)),
    "api_request_duration": (
        "redstep_api_request_duration_seconds",
        "AWS API request latency in the serve process.",
        ("service", "action"),
    ),
}


@dataclass
class QueueRow:
    name: str
    visible: int = 0
    in_flight: int = 0
    dead_letters: int = 0
    oldest_age: float = 0.0


@dataclass
class Snapshot:
    """Everything one scrape read."""

    counts: Counts = field(default_factory=dict)
    queues: list[QueueRow] = field(default_factory=list)
    workers_alive: int = 0
    workers_busy: int = 0
    running: dict[str, int] | None = None  # by machine; None: the counter stands in (module doc)


@dataclass
class Indexes:
    """The queue, worker and machine names a scrape found: the next scrape reads their numbers in
    the same pipeline as the indexes, and needs a second one only when the names have changed."""

    queues: list[str] = field(default_factory=list)
    workers: list[str] = field(default_factory=list)
    machines: list[str] = field(default_factory=list)


def read(connection: redis.Redis, settings: Settings, last: Indexes | None = None) -> Snapshot:
    """Read the counters and the derived numbers of the installation ``settings`` names.

    Args:
        connection: the installation's Redis.
        settings: its prefix and source queue.
        last: the names the previous scrape found; updated to this scrape's.
    """
    keys = Keys(settings.prefix)
    guess = last or Indexes([settings.source_queue], [])
    pipe = connection.pipeline(transaction=False)
    pipe.hgetall(metrics_key(settings.prefix))
    pipe.time()
    pipe.smembers(keys.queue_names)
    pipe.smembers(keys.dead_letter_queues)
    pipe.smembers(keys.workers)
    pipe.hkeys(keys.machines)
    pipe.exists(execution_index.built_key(keys))
    _details(pipe, keys, guess)
    replies = pipe.execute(raise_on_error=False)
    for reply in replies[:INDEX_REPLIES]:
        if isinstance(reply, Exception):
            raise reply
    stored, clock, queue_names, dead_letter_names, worker_names, machines, built = replies[:INDEX_REPLIES]
    seconds, micros = clock
    counts = _counts(stored)
    found = Indexes(
        sorted({lossless_text(n) for n in (*queue_names, *dead_letter_names)} | {settings.source_queue}),
        sorted(lossless_text(n) for n in worker_names),
        _machines(machines, counts),
    )
    details = replies[INDEX_REPLIES:]
    if found != guess:
        pipe = connection.pipeline(transaction=False)
        _details(pipe, keys, found)
        details = pipe.execute(raise_on_error=False)
    if last is not None:
        last.queues, last.workers, last.machines = found.queues, found.workers, found.machines
    # Until the machines' indexes are first built (this starts it) the counter stands in.
    exact = bool(built) or execution_index.is_built(connection, keys)
    return _snapshot(counts, seconds + micros / 1e6, found, details, exact)


def _machines(registered: list[bytes], counts: Counts) -> list[str]:
    """The registered machines, and those the counters name: a machine deleted since may still
    have executions running."""
    named = {lossless_text(name) for name in registered}
    for metric, labels in counts:
        if metric in ("executions_started", "executions_running") and len(labels) == 1:
            named.add(labels[0])
    return sorted(named)


def _details(pipe: redis.client.Pipeline, keys: Keys, names: Indexes) -> None:
    """Queue on ``pipe`` the reads of each queue's, each worker's and each machine's numbers."""
    for name in names.queues:
        pipe.xlen(keys.queue(name))
        pipe.xinfo_groups(keys.queue(name))
        pipe.xlen(keys.dead_letters(name))
        pipe.xrange(keys.queue(name), count=1)
    for worker in names.workers:
        pipe.exists(keys.alive(worker))
        pipe.hget(f"{RQ_WORKER_PREFIX}{worker}", "state")
    for machine in names.machines:
        pipe.zcard(execution_index.status_key(keys, machine, "RUNNING"))


def _snapshot(
    counts: dict[tuple[str, tuple[str, ...]], int],
    now: float,
    names: Indexes,
    details: list[Any],
    exact: bool,
) -> Snapshot:
    snapshot = Snapshot(counts=counts)
    for index, name in enumerate(names.queues):
        length, groups, dead, oldest = details[4 * index : 4 * index + 4]
        snapshot.queues.append(_queue(name, length, groups, dead, oldest, now))
    workers_at = 4 * len(names.queues)
    machines_at = workers_at + 2 * len(names.workers)
    for at in range(workers_at, machines_at, 2):
        alive, state = details[at : at + 2]
        if alive is True or (isinstance(alive, int) and alive > 0):
            snapshot.workers_alive += 1
            snapshot.workers_busy += state == b"busy"
    if exact:
        running = zip(names.machines, details[machines_at:], strict=True)
        # A reply that is an error (a key of another type) counts as none running.
        snapshot.running = {machine: n if isinstance(n, int) else 0 for machine, n in running}
    return snapshot


def _counts(stored: dict[bytes, bytes]) -> Counts:
    counts = {}
    for raw, value in stored.items():
        parsed = parse_field(lossless_text(raw))
        if parsed is not None and value.lstrip(b"-").isdigit():
            counts[parsed] = int(value)
    return counts


def _queue(name: str, length: Any, groups: Any, dead: Any, oldest: Any, now: float) -> QueueRow:
    """One queue's row; a reply that is an error (no stream yet) counts as empty."""
    row = QueueRow(name)
    length = length if isinstance(length, int) else 0
    if isinstance(groups, list):
        row.in_flight = sum(int(g["pending"]) for g in groups if lossless_text(g["name"]) == GROUP)
    row.visible = max(0, length - row.in_flight)
    row.dead_letters = dead if isinstance(dead, int) else 0
    if isinstance(oldest, list) and oldest:
        row.oldest_age = max(0.0, now - int(lossless_text(oldest[0][0]).split("-")[0]) / 1000)
    return row


def families(snapshot: Snapshot) -> Iterator[Metric]:
    """The Prometheus metric families of ``snapshot``."""
    by_metric: dict[str, list[tuple[tuple[str, ...], int]]] = defaultdict(list)
    for (metric, labels), value in sorted(snapshot.counts.items()):
        by_metric[metric].append((labels, value))
    for stem, (name, help_text, label_names) in COUNTERS.items():
        family = CounterMetricFamily(name, help_text, labels=label_names)
        for labels, value in by_metric[stem]:
            if len(labels) == len(label_names):
                family.add_metric(labels, value)
        yield family
    running = GaugeMetricFamily(
        "redstep_executions_running", "Executions running now.", labels=("state_machine",)
    )
    if snapshot.running is not None:
        for machine, value in sorted(snapshot.running.items()):
            running.add_metric([machine], value)
    else:
        for labels, value in by_metric["executions_running"]:
            if len(labels) == 1:
                running.add_metric(labels, max(0, value))
    yield running
    for stem, (name, help_text, label_names) in HISTOGRAMS.items():
        buckets, sums = by_metric[f"{stem}_bucket"], by_metric[f"{stem}_sum_us"]
        yield _histogram(name, help_text, label_names, buckets, sums)
    yield from _derived(snapshot)


def _histogram(
    name: str,
    help_text: str,
    label_names: tuple[str, ...],
    buckets: list[tuple[tuple[str, ...], int]],
    sums: list[tuple[tuple[str, ...], int]],
) -> Metric:
    """A histogram from per-bucket counts (each bucket's own, made cumulative here) and sums."""
    family = HistogramMetricFamily(name, help_text, labels=label_names)
    bounds = [repr(bound) for bound in DURATION_BUCKETS] + [INF]
    per_series: dict[tuple[str, ...], dict[str, int]] = defaultdict(dict)
    for labels, value in buckets:
        if len(labels) == len(label_names) + 1 and labels[-1] in bounds:
            per_series[labels[:-1]][labels[-1]] = value
    total_us = {labels: value for labels, value in sums if len(labels) == len(label_names)}
    for labels, counts in sorted(per_series.items()):
        cumulative, running_total = [], 0
        for bound in bounds:
            running_total += counts.get(bound, 0)
            cumulative.append((bound, running_total))
        family.add_metric(list(labels), cumulative, total_us.get(labels, 0) / 1_000_000)
    return family


def _derived(snapshot: Snapshot) -> Iterator[Metric]:
    messages = GaugeMetricFamily(
        "redstep_queue_messages",
        "Messages of each source queue: visible, in flight (received, not deleted), dead letters.",
        labels=("queue", "state"),
    )
    age = GaugeMetricFamily(
        "redstep_queue_oldest_message_age_seconds",
        "Age of the oldest message still in the queue (0 when empty).",
        labels=("queue",),
    )
    for row in snapshot.queues:
        messages.add_metric([row.name, "visible"], row.visible)
        messages.add_metric([row.name, "in_flight"], row.in_flight)
        messages.add_metric([row.name, "dead_letter"], row.dead_letters)
        age.add_metric([row.name], row.oldest_age)
    yield messages
    yield age
    workers = GaugeMetricFamily(
        "redstep_workers", "Worker processes alive, and of those busy and idle.", labels=("state",)
    )
    workers.add_metric(["alive"], snapshot.workers_alive)
    workers.add_metric(["busy"], snapshot.workers_busy)
    workers.add_metric(["idle"], snapshot.workers_alive - snapshot.workers_busy)
    yield workers
