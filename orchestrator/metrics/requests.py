"""The AWS API requests a ``serve`` process answers: counted in memory, added to Redis every second.

Counting a request costs a few dictionary updates; the counts go to the metrics hash in one
pipeline per second (and at each scrape), so several ``serve`` processes sum and a restart
loses at most the last second. Labels are bounded: the service's signing name (``states``,
``sqs``, ``sns``), an action the service serves (else ``other``), the HTTP status code.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

import redis

from orchestrator.protocol.metrics import counting_enabled, field, flat, metrics_key, observe

FLUSH_SECONDS = 1.0
FORM_BYTES_READ = 64 * 1024  # an SNS action is named early in its form; a huge body is not kept

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger(__name__)


class RequestMeter:
    """This process's request counts not yet in Redis, and the thread that adds them every second.

    Args:
        connection: the Redis to add to.
        prefix: the installation's key prefix.
        enabled: whether to count at all (default: unless ``REDSTEP_METRICS=0``).
    """

    def __init__(self, connection: redis.Redis, prefix: str, enabled: bool | None = None) -> None:
        self.connection = connection
        self.key = metrics_key(prefix)
        self.enabled = counting_enabled() if enabled is None else enabled
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def count(self, service: str, action: str, code: int, seconds: float) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._counts[field("api_requests", service, action, str(code))] += 1
            observe(self._counts, "api_request_duration", (service, action), seconds)

    def flush(self) -> None:
        """Add the counts so far to Redis in one pipeline; on failure they wait for the next flush."""
        with self._lock:
            pending, self._counts = self._counts, Counter()
        pairs = flat(pending)
        if not pairs:
            return
        pipe = self.connection.pipeline(transaction=True)
        for at in range(0, len(pairs), 2):
            pipe.hincrby(self.key, pairs[at], int(pairs[at + 1]))
        try:
            pipe.execute()
        except redis.RedisError as error:
            log.warning("API request counts kept for the next try: %s", error)
            with self._lock:
                self._counts.update(pending)

    def start(self) -> None:
        if self.enabled and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="metrics-flush", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            self.flush()


class RequestCounting:
    """ASGI middleware: counts each AWS API request (a POST to ``/``) with its status and latency.

    Args:
        app: the app it wraps.
        meter: where the counts go.
        targets: X-Amz-Target prefix -> (service label, the actions it serves).
        form_actions: the actions of the form-encoded (query protocol) service, labelled ``sns``.
    """

    def __init__(
        self,
        app: App,
        meter: RequestMeter,
        targets: dict[str, tuple[str, frozenset[str]]],
        form_actions: frozenset[str],
    ) -> None:
        self.app = app
        self.meter = meter
        self.targets = targets
        self.form_actions = form_actions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        aws = scope["type"] == "http" and scope["path"] == "/" and scope["method"] == "POST"
        if not self.meter.enabled or not aws:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {name.lower(): value for name, value in scope["headers"]}
        target = headers.get(b"x-amz-target", b"").decode("latin-1")
        form = bytearray()
        status = 500

        async def reading() -> Message:
            message = await receive()
            if not target and len(form) < FORM_BYTES_READ:
                form.extend(message.get("body", b"")[: FORM_BYTES_READ - len(form)])
            return message

        async def answering(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, reading, answering)
        finally:
            service, action = self.labels(target, bytes(form))
            self.meter.count(service, action, status, time.perf_counter() - started)

    def labels(self, target: str, form: bytes) -> tuple[str, str]:
        """The service and action labels of a request (``other`` for what no service serves)."""
        if target:
            prefix, _, action = target.partition(".")
            service, actions = self.targets.get(prefix, ("other", frozenset()))
            return service, action if action in actions else "other"
        named = parse_qs(form.decode("latin-1")).get("Action", [""])[0]
        return "sns", named if named in self.form_actions else "other"
