"""``GET /metrics`` on the serve app, and the counting of the app's own AWS API requests."""

from __future__ import annotations

from collections.abc import Iterator

import redis
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from orchestrator.api.sns import ACTIONS as SNS_ACTIONS
from orchestrator.api.sqs import ACTIONS as SQS_ACTIONS
from orchestrator.api.stepfunctions import ACTIONS as SFN_ACTIONS
from orchestrator.metrics import scrape
from orchestrator.metrics.requests import RequestCounting, RequestMeter
from orchestrator.settings import Settings


class RedisCollector:
    """A prometheus-client collector that reads everything afresh from Redis at each scrape."""

    def __init__(self, connection: redis.Redis, settings: Settings) -> None:
        self.connection = connection
        self.settings = settings
        self.indexes = scrape.Indexes()  # the names the last scrape found

    def collect(self) -> Iterator[Metric]:
        yield from scrape.families(scrape.read(self.connection, self.settings, self.indexes))


def install(app: Starlette, connection: redis.Redis, settings: Settings) -> None:
    """Serve ``/metrics`` on ``app`` and count its AWS API requests (flushed by a background job)."""
    meter = RequestMeter(connection, settings.prefix)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(connection, settings))

    async def metrics(request: Request) -> Response:
        def read() -> bytes:
            meter.flush()  # this process's own requests show at once
            return generate_latest(registry)

        try:
            body = await run_in_threadpool(read)
        except redis.RedisError as error:
            return Response(f"redstep could not reach its Redis: {error}\n", status_code=503)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    app.add_route("/metrics", metrics, methods=["GET"])
    targets = {
        "AWSStepFunctions": ("states", frozenset(SFN_ACTIONS)),
        "AmazonSQS": ("sqs", frozenset(SQS_ACTIONS)),
    }
    app.add_middleware(RequestCounting, meter=meter, targets=targets, form_actions=frozenset(SNS_ACTIONS))
    background = getattr(app.state, "background", None)
    if background is None:
        app.state.background = background = []
    background.append(meter)
