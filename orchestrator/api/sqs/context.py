"""What every SQS handler works with: the queues, queue URLs and ARNs, and SQS's errors."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from orchestrator.api.errors import ApiError
from orchestrator.api.pagination import PageTokens
from orchestrator.api.shapes import ServiceShapes
from orchestrator.runtime.queues import Queues
from orchestrator.runtime.receiving import Arrivals, Receiver
from orchestrator.settings import Settings

QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")
QUEUE_NAME_RULE = "1 to 80 ASCII letters, digits, hyphens or underscores"


def sqs_error(code: str, message: str, query_code: str | None = None) -> ApiError:
    """An SQS error; botocore raises ``client.exceptions.<code>`` for a modelled ``code``.

    ``query_code`` is the code SQS's query protocol used (sent in ``x-amzn-query-error``);
    AWS still sends it, and code written against it reads ``error.response["Error"]["Code"]``.
    """
    return ApiError(code, message, query_code=query_code or code)


def invalid_parameter(message: str) -> ApiError:
    return sqs_error("InvalidParameterValue", message)


@dataclass(frozen=True)
class Sqs:
    """The runtime's queues and the endpoint's configuration, handed to every handler.

    ``arrivals`` is what ReceiveMessage's long polls wait on, in the event loop.
    """

    queues: Queues
    receiver: Receiver
    arrivals: Arrivals
    settings: Settings
    region: str
    account: str
    tokens: PageTokens
    shapes: ServiceShapes

    def url(self, host: str, name: str) -> str:
        """The queue's URL as AWS and LocalStack shape it, on the host the client called."""
        return f"http://{host}/{self.account}/{name}"

    def arn(self, name: str) -> str:
        return f"arn:aws:sqs:{self.region}:{self.account}:{name}"

    def existing(self, name: str) -> str:
        """``name`` when that queue exists.

        Raises:
            ApiError: QueueDoesNotExist.
        """
        if QUEUE_NAME.fullmatch(name) and self.queues.exists(name):
            return name
        raise sqs_error(
            "QueueDoesNotExist",
            f"The specified queue does not exist: {name[:100]!r} (ListQueues shows the queues there are)",
            "AWS.SimpleQueueService.NonExistentQueue",
        )

    def queue_of(self, url: str) -> str:
        """The name of the existing queue ``url`` points at (any host: clients call us by many names).

        Raises:
            ApiError: InvalidAddress for what is no queue URL, QueueDoesNotExist for another
                account's queue or one that does not exist.
        """
        parts = urlsplit(url)
        segments = parts.path.strip("/").split("/")
        if parts.scheme not in ("http", "https") or len(segments) != 2:
            raise sqs_error(
                "InvalidAddress",
                f"QueueUrl {url[:200]!r} is not a queue URL: expected"
                f" http://<host>/{self.account}/<queue name>, as GetQueueUrl and CreateQueue answer",
            )
        account, name = segments
        if account != self.account:
            raise sqs_error(
                "QueueDoesNotExist",
                f"The specified queue does not exist: {url[:200]!r} names account {account[:20]!r},"
                f" but this endpoint serves account {self.account!r}",
                "AWS.SimpleQueueService.NonExistentQueue",
            )
        return self.existing(name)
