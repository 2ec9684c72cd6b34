"""Configuration from the environment, shared by every redstep process."""

from __future__ import annotations

from urllib.parse import unquote_plus, urlsplit, urlunsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of a redstep process; each one reads the environment variable of its name.

    ``REDIS_URL`` and ``REDSTEP_PREFIX`` are the two most people set; the timing knobs are
    here so tests can make a failure happen on purpose instead of waiting for it.
    """

    model_config = SettingsConfigDict(env_prefix="REDSTEP_", extra="ignore", populate_by_name=True)

    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias="REDIS_URL",
        description="Where Redis is; a password, an ACL user or rediss:// (TLS) just work.",
    )
    prefix: str = Field(default="redstep", description="Every key redstep writes starts with this.")
    source_queue: str = Field(default="dragons", description="The queue the dragon pipeline pulls from.")
    state_machine: str = Field(default="DragonPipeline", description="What the source queue starts.")
    topic: str = Field(default="dragon-notifications", description="The notification topic.")
    batch_size: int = Field(default=100, ge=1, le=10_000, description="Records pulled per batch.")
    batching_window_seconds: float = Field(default=0.0, ge=0, le=300)
    visibility_timeout_seconds: float = Field(default=30.0, gt=0)
    max_receive_count: int = Field(default=5, ge=1)
    poll_interval_seconds: float = Field(default=0.05, gt=0, description="Longest idle wait of a loop.")
    claim_idle_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Events a dead orchestrator left this long are taken over.",
    )
    notification_stream_length: int = Field(default=10_000, ge=1)
    lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A task whose worker stops renewing its lease this long fails with Lambda.Unknown.",
    )
    stop_grace_seconds: float = Field(
        default=5.0,
        ge=0,
        description=(
            "After SIGTERM, how long a worker lets its running task finish before it hands the task"
            " back to the queue for another worker and exits (keep it under the stop timeout of"
            " whatever stops it: docker compose waits 10 s by default)."
        ),
    )
    max_event_deliveries: int = Field(
        default=10,
        ge=1,
        description="An event delivered this often without being committed is moved aside as poison.",
    )
    reconnect_initial_seconds: float = Field(
        default=0.1, gt=0, description="First back-off delay after Redis is lost (doubles, jittered)."
    )
    reconnect_max_seconds: float = Field(default=5.0, gt=0, description="Longest back-off delay.")
    socket_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Longest wait for one Redis reply before the connection counts as lost.",
    )
    retention_seconds: float = Field(
        default=7_776_000.0,
        description=(
            "How long a finished (SUCCEEDED, FAILED, TIMED_OUT, ABORTED) execution is kept after it"
            " stops: its description, history and index entries, 90 days by default as on AWS."
            " 0 keeps them forever."
        ),
    )
    retention_sweep_interval_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How often each orchestrator removes executions past their retention.",
    )
    history_compact_after_seconds: float = Field(
        default=60.0,
        description=(
            "How long after an execution stops its history is compacted: the list of events becomes"
            " one compressed string, about a sixth of its memory. Negative: never."
        ),
    )
    fault_point: str = Field(
        default="",
        description="Tests only: <point>[:<n>] makes the orchestrator SIGKILL itself there.",
    )
    fault_clock_skew_seconds: float = Field(
        default=0.0,
        description="Tests only: this process's time.time() runs this many seconds off (a skewed clock).",
    )

    @field_validator("retention_seconds")
    @classmethod
    def _retention_not_negative(cls, value: float) -> float:
        if not value >= 0:  # also refuses NaN, which compares false with everything
            raise ValueError(
                f"REDSTEP_RETENTION_SECONDS must be 0 (keep finished executions forever) or a number"
                f" of seconds to keep them after they stop, not {value:g}"
            )
        return value


# redis-py also takes a password from the query string: the server's, or the client key's.
SECRET_QUERY_PARAMETERS = frozenset({"password", "ssl_password"})


def masked_url(url: str) -> str:
    """``url`` with every password in it replaced by ``***``, fit for logs and CLI output.

    The rest is kept as written: the user name, an IPv6 host in brackets, the query's other
    options (a CA file's path is no secret).
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        # Split as urlsplit does (at the last "@"), so the host part is kept verbatim.
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}:***@{host}"
    query = "&".join(_masked_pair(pair) for pair in parts.query.split("&")) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _masked_pair(pair: str) -> str:
    name, equals, value = pair.partition("=")
    if equals and value and unquote_plus(name) in SECRET_QUERY_PARAMETERS:
        return f"{name}=***"
    return pair
