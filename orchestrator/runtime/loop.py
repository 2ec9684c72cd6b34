"""The orchestrator: one iteration (:meth:`Orchestrator.run_once`) and the thin driver around it.

An iteration fires due timers, now and then removes executions past their retention
(:mod:`orchestrator.runtime.retention`), starts executions for a batch of source-queue messages,
reads a batch of events (checked by :mod:`orchestrator.runtime.intake`), groups them by
execution, loads those executions in one round trip, advances each, and commits each part
with one script call, computing the next part while Redis applies the one before
(:mod:`orchestrator.runtime.overlap`). Nothing is acknowledged before its commit; a batch that
loses a race (an execution moved on, an event was applied by another orchestrator) is
reloaded and recomputed.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

import redis

from orchestrator.asl import errors
from orchestrator.nested_executions import START_EXECUTION_EVENT
from orchestrator.protocol.faults import skew_wall_clock
from orchestrator.protocol.hops import HOPS
from orchestrator.protocol.keys import EVENT_FIELD
from orchestrator.protocol.leases import LEASE_ERROR, LEASE_MESSAGE
from orchestrator.protocol.metrics import counting_enabled, metrics_key
from orchestrator.protocol.pauses import settle_garbage_collector
from orchestrator.protocol.reconnect import OUTAGE_ERRORS, Outage
from orchestrator.runtime import heartbeats, transitions
from orchestrator.runtime.clock import RedisClock
from orchestrator.runtime.event_order import HeldEvents, stream_order
from orchestrator.runtime.faults import FaultPoints
from orchestrator.runtime.history_compaction import HistoryCompaction
from orchestrator.runtime.intake import EVENT_BATCH, Entry, Event, EventIntake, stamped
from orchestrator.runtime.keys import GROUP, Keys
from orchestrator.runtime.lone_failures import LoneFailures, blames_shared_keys, halves, is_server_state
from orchestrator.runtime.machines import MachineCache, register_shipped_machines, restore_shipped_machines
from orchestrator.runtime.nested import take_starts
from orchestrator.runtime.optimistic import Attempt, CommitConflict, Lost, commit_optimistically
from orchestrator.runtime.overlap import Computed, InFlight, group_by_execution, turns
from orchestrator.runtime.retention import Retention
from orchestrator.runtime.scripts import load_for_pipelines, lua_script
from orchestrator.runtime.sources import (
    EventSourceMapping,
    Message,
    ensure_group,
    entries_of,
    is_missing_group,
)
from orchestrator.runtime.store import (
    Commit,
    Conflict,
    KnownExecutions,
    Store,
    acked_elsewhere,
)
from orchestrator.runtime.targets import ServiceTargets
from orchestrator.runtime.transitions import Transition
from orchestrator.runtime.work_wait import WorkWait
from orchestrator.settings import Settings, masked_url

log = logging.getLogger(__name__)

TIMER_BATCH = 1000
TIMER_KEYS = 4  # fire_timers.lua's KEYS: the timers, the event stream, the leases, the metrics
HEARTBEAT_TTL_SECONDS = 10


class Orchestrator:
    """One orchestrator process's work; several may share one Redis.

    Args:
        redis_client: the connection.
        settings: prefix, source queue, state machine and timing knobs.
        consumer: this orchestrator's name in the consumer groups (unique per process).
        clock: the time source (epoch seconds); Redis's ``TIME`` by default (see runtime.clock).
        claim_idle_seconds: how long an event may sit unacknowledged with another
            orchestrator before this one takes it over (that one is presumed dead).
        forget_dead_every_seconds: how often it drops from ``{p}:orchestrators`` the names whose
            heartbeat expired.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        settings: Settings,
        consumer: str,
        clock: Callable[[], float] | None = None,
        claim_idle_seconds: float = 10.0,
        forget_dead_every_seconds: float = HEARTBEAT_TTL_SECONDS,
    ) -> None:
        self.redis = redis_client
        self.settings = settings
        self.consumer = consumer
        # Due times written by one process are judged by another: all of them go by Redis's clock.
        self.clock = clock = clock or RedisClock(redis_client)
        self.keys = Keys(settings.prefix)
        self.store = Store(redis_client, self.keys)
        self.known = KnownExecutions()
        self.machines = MachineCache(redis_client, self.keys)
        self.source = EventSourceMapping(redis_client, settings, consumer, clock=clock)
        self.targets = ServiceTargets(redis_client, settings)  # the queues and topics service tasks find
        self.retention = Retention(redis_client, settings, clock=clock)
        self.history_compaction = HistoryCompaction(redis_client, settings, clock=clock)
        self._fire_timers = lua_script(redis_client, "fire_timers")
        load_for_pipelines(self._fire_timers)
        self._count_expired_leases = "1" if counting_enabled() else "0"
        self.work_wait = WorkWait(redis_client, consumer)
        self.intake = EventIntake(
            redis_client, self.keys, consumer, clock, claim_idle_seconds, settings.max_event_deliveries
        )
        self.held_events = HeldEvents(redis_client, self.keys, consumer)  # event_order
        self.faults = FaultPoints(settings.fault_point)
        self.lone_failures = LoneFailures(self.store, settings, self.commit, clock)
        self.forget_dead_every_seconds = forget_dead_every_seconds
        self._next_forget_dead = 0.0  # time.monotonic() after which dead names leave the index
        # Whether no other orchestrator was alive at the last look (every forget_dead_every_seconds):
        # then the executions this one committed last are taken as they are, without a version read.
        self.alone = False
        self._next_upkeep = 0.0  # time.monotonic() after which an iteration beats and fires timers
        # Whether the last read filled its count: the next iteration reads again before it waits.
        self.more_waiting = False
        ensure_group(redis_client, self.keys.events)

    def ensure_groups(self) -> None:
        """Create the consumer groups again; Redis lost them (FLUSHALL, a restart without data).

        The shipped machines went with them: registered again, the records that come next run
        on them instead of failing as "State Machine Does Not Exist" until a restart.
        """
        log.warning("consumer groups missing (Redis lost its data?): creating them again")
        ensure_group(self.redis, self.keys.events)
        ensure_group(self.redis, self.source.stream)
        restored = restore_shipped_machines(self.redis, self.keys, self.settings.topic)
        if restored:
            log.warning("state machine(s) %s missing too: registered the shipped definitions again", restored)

    # -- one iteration -----------------------------------------------------------------------

    def run_once(self, block_seconds: float | None = None) -> int:
        """One iteration; returns how many messages and events it consumed.

        The heartbeat, firing timers and both reads share one pipelined round trip, done at most
        once per ``block_seconds`` (every time without it). Between them an iteration reads
        without waiting only when the last read left more behind (under load, in batches of up
        to EVENT_BATCH events); else it goes straight to the blocking read of both streams,
        which answers at once when work waits.

        Args:
            block_seconds: when given and nothing is waiting, wait up to this long for work.
        """
        try:
            return self._iterate(block_seconds)
        except redis.ResponseError as exc:
            if not is_missing_group(exc):
                raise
            # Whatever this iteration read stays pending in Redis (or went with the data).
            self.ensure_groups()
            return 0

    def _iterate(self, block_seconds: float | None) -> int:
        self.source.reclaim_if_due()
        self.retention.sweep_if_due()
        self.history_compaction.compact_if_due()
        self.forget_dead_orchestrators_if_due()
        upkeep = self.upkeep_due(block_seconds)
        events = self.read_all(upkeep) if upkeep or self.more_waiting else []
        batch = self.source.take_batch()
        if not events and not batch and block_seconds:
            events = self.wait_for_work(block_seconds)
            batch = self.source.take_batch()
            if not events and not batch:
                self.history_compaction.compact_if_due(idle=True)  # a wait found nothing: idle
        abandoned = self.intake.abandoned_events()
        if abandoned:  # older than what was just read: applied in the order they reached the stream
            events = sorted(events + abandoned, key=lambda event: stream_order(event[0]))
        events = self.held_events.sort_out(events)
        if batch:
            self.faults.reach("after-source-batch")
        in_flight = self.send_starts(batch)
        if events:
            self.faults.reach("after-read-events")
        consumed = 0
        try:
            for part in turns(events):
                if in_flight is not None and in_flight.names & {event["execution"] for _, event in part}:
                    consumed += self.finish(in_flight)  # an event for an execution starting now
                    in_flight = None
                sent = self.send_transitions(part)
                if in_flight is not None:
                    consumed += self.finish(in_flight)
                in_flight = sent
            if in_flight is not None:
                consumed += self.finish(in_flight)
                in_flight = None
        finally:
            if in_flight is not None:
                in_flight.abandon()
        return consumed

    def upkeep_due(self, block_seconds: float | None) -> bool:
        """Whether this iteration beats and fires timers (in read_all's round trip).

        A loop that waits blocks at most ``block_seconds`` at a time, so doing the upkeep once per
        such interval keeps timers as punctual as an idle loop keeps them; doing it on every
        iteration cost a busy loop a script call per iteration, and a loop that had just
        committed one step a round trip before its next blocking read.
        """
        now = time.monotonic()
        if not block_seconds or now >= self._next_upkeep:
            self._next_upkeep = now + (block_seconds or 0.0)
            return True
        return False

    def beat(self) -> None:
        """Write this orchestrator's heartbeat, in a round trip of its own.

        Raises:
            redis.ConnectionError, redis.TimeoutError, redis.exceptions.OutOfMemoryError, ...:
                while Redis is away or refuses writes (OUTAGE_ERRORS).
        """
        pipe = self.redis.pipeline(transaction=False)
        heartbeats.beat(pipe, self.keys, self.consumer, self.clock(), HEARTBEAT_TTL_SECONDS)
        pipe.execute()

    def forget_dead_orchestrators_if_due(self) -> None:
        """Now and then, drop from ``{p}:orchestrators`` the names whose beat expired; see who else beats."""
        now = time.monotonic()
        if now >= self._next_forget_dead:
            self._next_forget_dead = now + self.forget_dead_every_seconds
            heartbeats.forget_dead(self.redis, self.keys)
            self.alone = set(heartbeats.alive(self.redis, self.keys)) <= {self.consumer}

    def read_all(self, upkeep: bool = True) -> list[Event]:
        """Read both the source queue and the event stream without waiting, in one round trip.

        With ``upkeep``, the same round trip beats and fires due timers.
        """
        pipe = self.redis.pipeline(transaction=False)
        # Each reply is found by the place its command took in the pipeline, noted as it is queued.
        fired_reply = len(pipe)
        if upkeep:
            pipe.evalsha(self._fire_timers.sha, TIMER_KEYS, *self.timer_arguments())
            heartbeats.beat(pipe, self.keys, self.consumer, self.clock(), HEARTBEAT_TTL_SECONDS)
        room = self.source.room
        source_reply = len(pipe)
        if room > 0:
            pipe.xreadgroup(GROUP, self.consumer, {self.source.stream: ">"}, count=room)
        events_reply = len(pipe)
        self.intake.queue_read(pipe)
        try:
            replies = pipe.execute()
        except redis.exceptions.NoScriptError:
            # Redis restarted or flushed its scripts: load the script again, and read next time.
            load_for_pipelines(self._fire_timers)
            return []
        if upkeep and replies[fired_reply]:
            self.faults.reach("after-timers")
        source_entries = entries_of(replies[source_reply]) if room > 0 else []
        event_entries = entries_of(replies[events_reply])
        self.more_waiting = (room > 0 and len(source_entries) >= room) or len(event_entries) >= EVENT_BATCH
        self.source.accept_entries(source_entries)
        return self.intake.parse(event_entries)

    def wait_for_work(self, block_seconds: float) -> list[Event]:
        """Block until a message or an event arrives on either stream, or ``block_seconds`` pass."""
        room = self.source.room
        streams = [self.keys.events, self.source.stream] if room > 0 else [self.keys.events]
        # One COUNT serves both streams; a stream that filled it has more waiting, which the next
        # iteration takes with read_all's larger batch instead of waiting.
        count = max(1, room)
        entries: list[Entry] = []
        self.more_waiting = False
        for stream, batch in self.work_wait.read(streams, count, max(1, int(block_seconds * 1000))):
            self.more_waiting = self.more_waiting or len(batch) >= count
            if stream == self.source.stream:
                self.source.accept_entries(batch)
            else:
                entries += batch
        return self.intake.parse(entries)

    def timer_arguments(self) -> list[Any]:
        keys = [self.keys.timers, self.keys.events, self.keys.leases, metrics_key(self.keys.prefix)]
        lease = [LEASE_ERROR, LEASE_MESSAGE, self._count_expired_leases]
        return [*keys, repr(self.clock()), TIMER_BATCH, EVENT_FIELD, *lease]

    def fire_timers(self) -> int:
        """Move due timers and expired leases onto the event stream; exactly one orchestrator fires each."""
        arguments = self.timer_arguments()
        return int(self._fire_timers(keys=arguments[:TIMER_KEYS], args=arguments[TIMER_KEYS:]))

    # -- starting executions -----------------------------------------------------------------

    def start_executions(self, messages: list[Message]) -> int:
        """Start one execution per message id; a message whose execution exists only acks its entry.

        Entries that share a message id (a send repeated after a lost reply) start one
        execution between them, whether they come in one batch or in several. A batch whose
        commit Redis refuses (not a race: an error) is split in halves until each execution
        that cannot commit stands alone; that one starts FAILED (States.Runtime), the rest start.
        """
        if not messages:
            return 0
        try:
            return self._start_batch(messages)
        except (redis.ResponseError, ValueError) as exc:
            if is_missing_group(exc) or is_server_state(exc):
                raise  # not this batch's fault: it stays pending and is read again
            names = list(dict.fromkeys(m.name for m in messages))
            if len(names) > 1:
                parts = [set(part) for part in halves(names)]
                return sum(self.start_executions([m for m in messages if m.name in p]) for p in parts)
            return self.start_failed(messages, exc)

    def start_failed(self, messages: list[Message], exc: Exception) -> int:
        """Start the one execution ``messages`` name FAILED, because its start cannot commit.

        When even that cannot commit, its messages stay pending: delivered again, they go to
        the dead-letter queue after ``max_receive_count`` deliveries, as any failing record does.
        """
        name = messages[0].name
        if blames_shared_keys(exc, name):
            # Not the record's fault: it stays pending, is delivered again, and in the end is
            # dead-lettered with its reason unless the key is fixed meanwhile.
            log.error("execution %s: its start cannot commit: %s; the record stays queued", name, exc)
            return 0
        cause = f"the commit of the execution's start failed: {exc}"
        log.error("execution %s: %s; it starts FAILED", name, cause)
        entry_ids, body = [m.entry_id for m in messages], messages[0].body
        machine = self.settings.state_machine
        try:
            self.lone_failures.fail_start(name, machine, body, self.source.stream, entry_ids, cause)
        except (redis.ResponseError, ValueError) as again:
            if is_missing_group(again) or is_server_state(again):
                raise
            log.error("execution %s: nor could its failed start be committed: %s", name, again)
            return 0
        return len(messages)

    def _start_batch(self, messages: list[Message]) -> int:
        def attempt(race: Attempt) -> int | Lost:
            computed = self.compute_starts(messages, race)
            conflicts = self.commit(computed.commit)
            if conflicts:
                return Lost(conflicts)
            return computed.landed()

        try:
            return commit_optimistically(f"the start of {len(messages)} execution(s)", attempt)
        except CommitConflict as gave_up:
            log.warning("%s; their records stay pending", gave_up)
            return 0

    def compute_starts(self, messages: list[Message], race: Attempt) -> Computed:
        """The commit that starts one execution per new message id and acks every message."""
        pending = [m for m in messages if not acked_elsewhere(race.conflicts, m.entry_id)]
        names = list(dict.fromkeys(m.name for m in pending))
        # A message is nearly always new: assume so, and load only after a conflict says otherwise.
        loaded = self.store.load(names) if race.retry else dict.fromkeys(names, (None, 0))
        commit = self.store.new_commit()
        started: dict[str, Transition] = {}
        for message in pending:
            commit.expect_pending(self.source.stream, message.entry_id)
            commit.ack(self.source.stream, message.entry_id)
            if loaded[message.name][0] is None and message.name not in started:
                commit.expect_version(message.name, 0)
                transition = self.start_one(self.settings.state_machine, message.name, message.body)
                transitions.record(commit, transition, 0, self.settings)
                started[message.name] = transition
        commit.enqueue_tasks([task for transition in started.values() for task in transition.tasks])

        def landed() -> int:
            if HOPS.on:
                HOPS.note("committed", executions=list(started))
            for transition in started.values():
                self.known.remember(transition.execution, 1)
            return len(pending)

        return Computed(commit, landed, set(names))

    # -- commits in turns (runtime.overlap) ---------------------------------------------------

    def send_starts(self, messages: list[Message]) -> InFlight | None:
        """Compute the starts of ``messages`` and send their commit without waiting for it."""
        if not messages:
            return None
        return self._send(partial(self.compute_starts, messages), partial(self.start_executions, messages))

    def send_transitions(self, events: list[Event]) -> InFlight | None:
        """Compute the transitions ``events`` make and send their commit without waiting for it."""
        if not events:
            return None
        return self._send(partial(self.compute_transitions, events), partial(self.apply_events, events))

    def _send(self, compute: Callable[[Attempt], Computed], again: Callable[[], int]) -> InFlight:
        try:
            computed = compute(Attempt())
        except (redis.ResponseError, ValueError) as exc:
            if is_missing_group(exc) or is_server_state(exc):
                raise
            return InFlight(None, None, again)  # the synchronous way meets it again and splits the batch
        self.faults.reach("before-commit")
        try:
            return InFlight(self.store.send(computed.commit), computed, again)
        except OUTAGE_ERRORS:
            return InFlight(None, None, again)  # the synchronous way retries, as redis-py does

    def finish(self, in_flight: InFlight) -> int:
        """Read a sent commit's outcome; a lost race or an error does the batch again, synchronously."""
        if in_flight.sent is None or in_flight.computed is None:
            return in_flight.again()
        try:
            conflicts = in_flight.sent.outcome()
        except OUTAGE_ERRORS:
            # Landed or not, the synchronous way finds out: its version checks and acks see a
            # batch that landed as a lost race, reload, and find nothing left to do.
            return in_flight.again()
        except (redis.ResponseError, ValueError) as exc:
            if is_missing_group(exc) or is_server_state(exc):
                raise
            return in_flight.again()
        self.faults.reach("after-commit")
        if conflicts:
            return in_flight.again()
        return in_flight.computed.landed()

    def commit(self, commit: Commit) -> list[Conflict]:
        """Apply ``commit`` in one script call: the writes, acks, task jobs and publishes together."""
        self.faults.reach("before-commit")
        conflicts = self.store.commit(commit)
        self.faults.reach("after-commit")
        return conflicts

    def start_one(self, machine_name: str, name: str, input: Any) -> Transition:
        now = self.clock()
        machine = self.machines.get(machine_name)
        if machine is None:
            cause = f"State Machine Does Not Exist: '{machine_name}' (no definition is registered under it)"
            return transitions.fail(name, machine_name, input, errors.RUNTIME, cause, now)
        try:
            return transitions.start(machine, name, input, now, targets=self.targets)
        except Exception as exc:
            log.exception("starting %s failed", name)
            cause = f"The orchestrator could not start the execution: {type(exc).__name__}: {exc}"
            return transitions.fail(name, machine_name, input, errors.RUNTIME, cause, now)

    # -- applying events ---------------------------------------------------------------------

    def apply_events(self, events: list[Event]) -> int:
        """Advance every execution the events name and commit them all in one script call.

        A batch whose commit Redis refuses (not a race: an error) is split in halves until
        each execution that cannot commit stands alone, and the rest commits; that execution
        ends FAILED (States.Runtime, the error as the cause) in a commit of its own that
        acknowledges its events, so it neither blocks the others nor hangs RUNNING.
        """
        if not events:
            return 0
        try:
            return self._apply_batch(events)
        except (redis.ResponseError, ValueError) as exc:
            if is_missing_group(exc) or is_server_state(exc):
                raise  # not this batch's fault: it stays pending and is read again
            groups = list(group_by_execution(events).values())
            if len(groups) > 1:
                return sum(self.apply_events([e for g in part for e in g]) for part in halves(groups))
            return self.fail_alone(events, exc)

    def fail_alone(self, events: list[Event], exc: Exception) -> int:
        """End the one execution ``events`` name FAILED, because their transition cannot commit.

        Only when even that cannot commit (or there is no running execution to fail) are the
        events moved aside, with both errors, for a person to look at.
        """
        name = events[0][1]["execution"]
        reason = f"the transition could not be committed: {exc}"
        if blames_shared_keys(exc, name):
            # Every execution touching that key would fail; its events wait to be replayed instead.
            reason += "; fix the key, then run `redstep events replay --all`"
            log.error("execution %s: %s", name, reason)
            self.intake.move_aside([(i, {EVENT_FIELD: json.dumps(e)}, reason, 1) for i, e in events])
            return len(events)
        cause = f"the commit of this transition failed: {exc}"
        log.error("execution %s: %s; it fails alone", name, cause)
        try:
            if self.lone_failures.fail_running(name, self.keys.events, [i for i, _ in events], cause):
                return len(events)
        except (redis.ResponseError, ValueError) as again:
            if is_missing_group(again) or is_server_state(again):
                raise
            reason += f"; nor could the execution's failure: {again}"
        self.intake.move_aside([(i, {EVENT_FIELD: json.dumps(e)}, reason, 1) for i, e in events])
        return len(events)

    def _apply_batch(self, events: list[Event]) -> int:
        def attempt(race: Attempt) -> int | Lost:
            computed = self.compute_transitions(events, race)
            conflicts = self.commit(computed.commit)
            if conflicts:
                return Lost(conflicts)
            return computed.landed()

        try:
            return commit_optimistically(f"the transitions of {len(events)} event(s)", attempt)
        except CommitConflict as gave_up:
            log.warning("%s; the events stay pending and will be claimed again", gave_up)
            return len(events)

    def compute_transitions(self, events: list[Event], race: Attempt) -> Computed:
        """The commit that advances every execution ``events`` name and acks the events."""
        pending = [(i, e) for i, e in events if not acked_elsewhere(race.conflicts, i)]
        by_execution = group_by_execution(pending)
        names = list(by_execution)
        # After a race, what this orchestrator remembers may be what lost it: load afresh.
        if race.retry:
            loaded = self.store.load(names)
        else:
            loaded = self.store.load_known(names, self.known, trusted=self.alone)
        commit = self.store.new_commit()
        advanced = []
        for name, batch in by_execution.items():
            transition = self.advance_one(commit, name, batch, *loaded[name])
            if transition is not None:
                advanced.append((transition, loaded[name][1] + 1))
        commit.enqueue_tasks([task for transition, _ in advanced for task in transition.tasks])

        def landed() -> int:
            if HOPS.on:
                HOPS.note("committed", executions=names)
            for transition, version in advanced:
                self.known.remember(transition.execution, version)
            return len(events)

        return Computed(commit, landed, set(names))

    def advance_one(
        self, commit: Commit, name: str, batch: list[Event], execution: dict[str, Any] | None, version: int
    ) -> Transition | None:
        """Write one execution's transition for ``batch`` into ``commit``; returns it, or None."""
        for entry_id, _ in batch:
            commit.expect_pending(self.keys.events, entry_id)
            commit.ack(self.keys.events, entry_id)
        starts = [event for _, event in batch if event["type"] == START_EXECUTION_EVENT]
        if starts:
            if execution is None and any(event["type"] == "StopExecution" for _, event in batch):
                return None  # its .sync task gave up on it before it started: it never starts
            now = self.clock()
            started = take_starts(
                commit, name, starts, execution, self.machines.get, self.settings, now, self.targets
            )
            batch = [(entry_id, event) for entry_id, event in batch if event["type"] != START_EXECUTION_EVENT]
            if started is not None or not batch:
                return started
        if execution is None:
            reason = f"no execution named {name!r}"
            for entry_id, event in batch:
                commit.add_stream_entry(
                    self.keys.malformed,
                    {
                        "stream": self.keys.events,
                        "id": entry_id,
                        "reason": reason,
                        "fields": json.dumps({EVENT_FIELD: json.dumps(event)}),
                    },
                )
            return None
        if execution["status"] != "RUNNING":
            return None  # late reports for a finished execution change nothing
        commit.expect_version(name, version)
        transition = self.transition(execution, [stamped(entry_id, event) for entry_id, event in batch])
        transitions.record(commit, transition, version, self.settings)
        return transition

    def transition(self, execution: dict[str, Any], events: list[dict[str, Any]]) -> Transition:
        now = self.clock()
        name, machine_name = execution["name"], execution["stateMachine"]
        machine = self.machines.get(machine_name, execution.get("machineVersion"))
        if machine is None:
            cause = f"State Machine Does Not Exist: '{machine_name}' (its definition was removed)"
            return transitions.fail(name, machine_name, None, errors.RUNTIME, cause, now, execution)
        try:
            return transitions.apply(machine, execution, events, now, self.targets)
        except Exception as exc:
            log.exception("advancing %s failed", name)
            cause = f"The orchestrator could not advance the execution: {type(exc).__name__}: {exc}"
            # The core changes the execution in place, so it fails from the copy at rest: the one
            # this transition started from (a newer one loses the commit's version check anyway).
            # Reading it here, on the rare failure, spares a copy of every execution on every step.
            at_rest = self.store.load([name])[name][0] or execution
            return transitions.fail(name, machine_name, None, errors.RUNTIME, cause, now, at_rest)

    # -- the driver --------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Repeat :meth:`run_once` until ``stop`` is set; a Redis outage is waited out, not fatal.

        While Redis is away or refuses writes the loop backs off (bounded, jittered) and logs
        one line when the outage starts and one when it ends. Whatever was consumed and not
        committed is still pending in Redis and is claimed again once ``claim_idle_seconds``
        pass. Until a heartbeat lands the loop reads nothing: a Redis that refuses writes still
        serves reads, and every message read then would wait out its visibility timeout and
        count one more delivery toward the dead-letter queue.
        """
        outage = Outage.for_settings(self.settings, f"orchestrator {self.consumer}")
        while not stop.is_set():
            try:
                if outage.ongoing:
                    self.beat()
                self.run_once(block_seconds=self.settings.poll_interval_seconds)
            except OUTAGE_ERRORS as exc:
                stop.wait(outage.failed(exc))
                continue
            except Exception:
                log.exception("orchestrator iteration failed")
                stop.wait(1.0)
            outage.succeeded()


def run_orchestrator(
    settings: Settings, stop: threading.Event | None = None, consumer: str | None = None
) -> None:
    """Run one orchestrator until ``stop`` is set or SIGTERM / SIGINT arrives (the CLI's entry)."""
    stop = stop or threading.Event()
    consumer = consumer or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
    skew_wall_clock(settings.fault_clock_skew_seconds)
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    redis_client = redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.socket_timeout_seconds,
        socket_connect_timeout=min(5.0, settings.socket_timeout_seconds),
        health_check_interval=30,
        client_name=f"redstep-orchestrator-{consumer}",  # names it in CLIENT LIST
    )
    try:
        log.info("orchestrator %s on %s", consumer, masked_url(settings.redis_url))
        orchestrator = start_when_reachable(redis_client, settings, consumer, stop)
        if orchestrator is not None:
            settle_garbage_collector()
            orchestrator.run(stop)
    finally:
        redis_client.close()


def start_when_reachable(
    redis_client: redis.Redis, settings: Settings, consumer: str, stop: threading.Event
) -> Orchestrator | None:
    """The orchestrator, set up once Redis answers (it may still be starting); None if stopped first."""
    outage = Outage.for_settings(settings, f"orchestrator {consumer}")
    while not stop.is_set():
        try:
            idle = settings.claim_idle_seconds
            orchestrator = Orchestrator(redis_client, settings, consumer, claim_idle_seconds=idle)
            # After the consumer groups: Redis losing its data between the two then shows as
            # missing groups at the first read, which registers the shipped machines again.
            register_shipped_machines(redis_client, Keys(settings.prefix), settings.topic)
        except OUTAGE_ERRORS as exc:
            stop.wait(outage.failed(exc))
            continue
        outage.succeeded()
        return orchestrator
    return None
