"""An execution page's reading of its history, kept between views of a running execution.

A running execution's page asks for its live part every few seconds, and its history can be
~25,000 events (several MB). Each view goes on from where the last view of that execution
stopped: it keeps the events the page shows (a history of at most ``MAX_HISTORY_EVENTS``
whole; of a longer one, the first and the latest ``HISTORY_ENDS``) and the graph's
``CourseReader``, never the whole history, and reads only the events added since.

A history only grows while its execution runs. A kept reading is used again only when the
execution still runs, was not redriven since, its history is at least as long as what was
read and still starts with the same event; anything else (an execution that ended, was
redriven, deleted, swept and started again under its name) is read afresh.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from typing import Any

from orchestrator.dashboard.runs import CourseReader
from orchestrator.runtime.client import Client

MAX_HISTORY_EVENTS = 5000
"""An execution page shows a history this long whole; a longer one, its first and latest events."""
HISTORY_ENDS = 1000
"""How many of the first and of the latest events an execution page shows of a longer history."""
HISTORY_CHUNK = 2000
KEPT_READINGS = 32
"""Executions whose reading is kept, the least recently viewed dropped first."""
KEPT_EVENTS = 60_000
"""Events all kept readings hold together at most (each holds at most ``MAX_HISTORY_EVENTS``
plus ``HISTORY_ENDS``), so big events on many open pages cannot grow the server unbounded."""
KEPT_READ_EVENTS = 250_000
"""Events all kept readings' courses were read from, at most: a course keeps what each event
read may still need (~250 bytes an event for a long loop), so ~60 MB in all."""


class HistoryReading:
    """The events of one history read so far, as the page needs them, and its course so far.

    ``prefix`` holds the first events, up to ``prefix_limit``: ``MAX_HISTORY_EVENTS`` until the
    history was seen longer than that, then only ``HISTORY_ENDS`` (a history never shrinks
    while it is followed, so it is never shown whole again). ``tail`` holds the latest
    ``HISTORY_ENDS`` events after the prefix.
    """

    def __init__(self, redrive_count: int) -> None:
        self.redrive_count = redrive_count
        self.count = 0
        self.prefix_limit = MAX_HISTORY_EVENTS
        self.prefix: list[dict[str, Any]] = []
        self.tail: deque[dict[str, Any]] = deque(maxlen=HISTORY_ENDS)
        self.course = CourseReader()

    @property
    def kept_events(self) -> int:
        return len(self.prefix) + len(self.tail)

    def read(self, client: Client, name: str) -> int:
        """Reads the events added since the last read, in chunks; how many it read."""
        before = self.count
        while True:
            chunk = client.history_range(name, self.count, self.count + HISTORY_CHUNK - 1)
            for event in chunk:
                (self.prefix if len(self.prefix) < self.prefix_limit else self.tail).append(event)
            self.count += len(chunk)
            self.course.feed(chunk)
            if len(chunk) < HISTORY_CHUNK:
                return self.count - before

    def ends(self, length: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
        """The events the page shows, given the history's ``length`` when the page was asked for:
        the first ones, the latest ones, and how many lie hidden between them.

        A history of at most ``MAX_HISTORY_EVENTS`` (then) is all first ones; events a running
        execution added meanwhile are latest ones, and a history that grew past that only while
        it was read hides none of them unless more than ``HISTORY_ENDS`` were added.
        """
        keep_first = length if length <= MAX_HISTORY_EVENTS else HISTORY_ENDS
        first = self.prefix[:keep_first]
        latest = (self.prefix[keep_first:] + list(self.tail))[-HISTORY_ENDS:]
        if length > MAX_HISTORY_EVENTS and self.prefix_limit > HISTORY_ENDS:
            # From now on the page shows only the first HISTORY_ENDS: keep no more of them.
            self.tail = deque(self.prefix[HISTORY_ENDS:] + list(self.tail), maxlen=HISTORY_ENDS)
            del self.prefix[HISTORY_ENDS:]
            self.prefix_limit = HISTORY_ENDS
        return first, latest, self.count - len(first) - len(latest)

    def still_matches(self, client: Client, name: str, redrive_count: int, length: int) -> bool:
        """Whether this reading can go on: the history only grew since it was read."""
        if redrive_count != self.redrive_count or length < self.count or not self.prefix:
            return False
        return client.history_range(name, 0, 0) == self.prefix[:1]


class HistoryReadings:
    """The kept readings, by execution name: a small LRU, safe to share between threads.

    A reading is taken out while a view uses it and put back after, so two views of one
    execution at once never feed the same reading (the second one reads afresh).
    """

    def __init__(
        self, size: int = KEPT_READINGS, max_events: int = KEPT_EVENTS, max_read: int = KEPT_READ_EVENTS
    ) -> None:
        self.size, self.max_events, self.max_read = size, max_events, max_read
        self._readings: OrderedDict[str, HistoryReading] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._readings)

    def take(self, name: str) -> HistoryReading | None:
        with self._lock:
            return self._readings.pop(name, None)

    def keep(self, name: str, reading: HistoryReading) -> None:
        with self._lock:
            self._readings[name] = reading
            self._readings.move_to_end(name)
            kept = sum(each.kept_events for each in self._readings.values())
            read = sum(each.count for each in self._readings.values())
            while len(self._readings) > 1 and (
                len(self._readings) > self.size or kept > self.max_events or read > self.max_read
            ):
                _, dropped = self._readings.popitem(last=False)
                kept, read = kept - dropped.kept_events, read - dropped.count

    def forget(self, name: str) -> None:
        with self._lock:
            self._readings.pop(name, None)


def read_history(
    readings: HistoryReadings, client: Client, name: str, described: dict[str, Any]
) -> tuple[HistoryReading, int]:
    """The reading of ``name``'s history up to now, and the history's length when asked.

    It goes on from a kept reading when that can be trusted, else reads the history whole.
    The caller keeps it again (``readings.keep``) once its view is built, only while the
    execution runs: an ended one closes its course, which then takes no more events.
    """
    length = client.history_length(name)
    redrive_count = int(described.get("redriveCount") or 0)
    reading = readings.take(name)
    running = described["status"] == "RUNNING"
    if reading is None or not running or not reading.still_matches(client, name, redrive_count, length):
        reading = HistoryReading(redrive_count)
    reading.read(client, name)
    return reading, length
