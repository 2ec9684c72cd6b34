"""The ``context`` a function receives, shaped like AWS Lambda's Python context object.

Besides Lambda's attributes it carries where the function's data lives (``redis`` and
``prefix``), so a function such as AddDragon needs no global connection and a unit test
can hand it any store it likes.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from redis import Redis

from orchestrator.protocol.tasks import function_arn

DEFAULT_MEMORY_LIMIT_IN_MB = 128
DEFAULT_TIMEOUT_SECONDS = 180.0


@dataclass
class LambdaContext:
    """What Lambda's runtime passes as ``context``, plus redstep's data store.

    Attributes:
        function_name: the registered name of the running function.
        invoked_function_arn: the ARN the state machine's Task named.
        aws_request_id: unique per invocation.
        deadline: ``time.monotonic()`` value at which the invocation's time runs out.
        redis: the connection to the function's data, when it has any.
        prefix: the key prefix every redstep key starts with.
        execution: the name of the execution that scheduled this invocation.
        attempt: which attempt of the task this is (0 for the first).
    """

    function_name: str
    invoked_function_arn: str = ""
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    deadline: float = field(default_factory=lambda: time.monotonic() + DEFAULT_TIMEOUT_SECONDS)
    redis: Redis | None = None
    prefix: str = "redstep"
    execution: str = ""
    attempt: int = 0
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = DEFAULT_MEMORY_LIMIT_IN_MB
    identity: object | None = None
    client_context: object | None = None

    def __post_init__(self) -> None:
        if not self.invoked_function_arn:
            self.invoked_function_arn = function_arn(self.function_name)

    @property
    def log_group_name(self) -> str:
        """The CloudWatch log group Lambda would write to, kept for code that reads it."""
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        """A per-invocation log stream name in Lambda's ``date/[version]id`` form."""
        return f"{time.strftime('%Y/%m/%d')}/[{self.function_version}]{self.aws_request_id.replace('-', '')}"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation times out (never negative)."""
        return max(0, int((self.deadline - time.monotonic()) * 1000))
