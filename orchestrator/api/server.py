"""Build the endpoint from the configuration and run it under uvicorn."""

from __future__ import annotations

import redis
import uvicorn
from starlette.applications import Starlette

from orchestrator.api.app import Endpoint, JsonService, create_app
from orchestrator.api.arns import Arns
from orchestrator.api.config import ApiSettings
from orchestrator.api.pagination import PageTokens, token_key
from orchestrator.api.shapes import ServiceShapes
from orchestrator.api.sns import ACTIONS as SNS_ACTIONS
from orchestrator.api.sns import Sns
from orchestrator.api.sns.delivery import Delivery
from orchestrator.api.sns.endpoint import SnsEndpoint
from orchestrator.api.sqs import ACTIONS as SQS_ACTIONS
from orchestrator.api.sqs import Sqs
from orchestrator.api.stepfunctions import ACTIONS, StepFunctions
from orchestrator.dashboard.app import create_dashboard
from orchestrator.metrics.endpoint import install as install_metrics
from orchestrator.runtime.catalog import Catalog
from orchestrator.runtime.client import Client
from orchestrator.runtime.queues import Queues
from orchestrator.runtime.receiving import Arrivals, Receiver
from orchestrator.settings import Settings

CONNECT_TIMEOUT_SECONDS = 5.0


def build_app(settings: Settings, api: ApiSettings, credentials: dict[str, str] | None) -> Starlette:
    """The app for ``settings`` (Redis, prefix) and ``api`` (region, account); ``credentials``
    None serves without checking signatures."""
    connection = redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=settings.socket_timeout_seconds,
        health_check_interval=30,
    )
    client = Client(connection, settings)
    tokens = PageTokens(token_key(list((credentials or {}).values()), settings.prefix))
    stepfunctions = StepFunctions(
        client=client,
        catalog=Catalog(connection, client.keys),
        arns=Arns(api.region, api.account_id),
        tokens=tokens,
        shapes=ServiceShapes("stepfunctions"),
    )
    sqs = Sqs(
        queues=Queues(connection, settings),
        receiver=Receiver(connection, settings),
        arrivals=Arrivals(settings),
        settings=settings,
        region=api.region,
        account=api.account_id,
        tokens=tokens,
        shapes=ServiceShapes("sqs"),
    )
    services = [
        JsonService("AWSStepFunctions", "states", ACTIONS, stepfunctions),
        JsonService("AmazonSQS", "sqs", SQS_ACTIONS, sqs, with_host=True),
    ]
    sns = Sns(connection, settings, api.region, api.account_id, tokens, ServiceShapes("sns"))
    endpoint = Endpoint(
        {service.target_prefix: service for service in services},
        credentials,
        api.region,
        query=SnsEndpoint(sns, SNS_ACTIONS, credentials, api.region),
    )
    app = create_app(endpoint, lambda: _healthy(connection))
    app.mount("/ui", create_dashboard(client, credentials))
    # Threads serve() runs beside the server: delivery of notifications to SNS subscriptions.
    app.state.background = [Delivery(sns, Queues(connection, settings))]
    install_metrics(app, connection, settings)  # GET /metrics, and counting the API's requests
    return app


def serve(app: Starlette, host: str, port: int, log_level: str = "info") -> None:
    """Serve ``app`` until SIGINT or SIGTERM (uvicorn finishes the requests under way)."""
    background = getattr(app.state, "background", [])
    for job in background:
        job.start()
    try:
        uvicorn.run(
            app, host=host, port=port, log_level=log_level.lower(), access_log=False, server_header=False
        )
    finally:
        for job in background:
            job.stop()


def _healthy(connection: redis.Redis) -> tuple[bool, str]:
    try:
        connection.ping()
    except redis.RedisError as error:
        return False, f"Redis unreachable: {error}"
    return True, "Redis reachable"
