"""Many idle SQS long polls (consumers polling empty queues), or StopExecutions no orchestrator
applies, leave the rest of the API answering."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import redis
from botocore.config import Config

from orchestrator.runtime.keys import Keys
from orchestrator.runtime.server import RedisServer
from tests.api_fixtures import (
    ACCESS_KEY_ID,
    FINISH_SECONDS,
    REGION,
    SECRET_ACCESS_KEY,
    ApiStack,
    eventually,
    role_arn,
    running_stack,
    unique,
    wait_machine,
)

POOL_THREADS = 40
"""The threads serve runs synchronous work on (anyio's default): more polls than this once filled it."""
POLLS = POOL_THREADS + 10
POLL_SECONDS = 20
HANG_UP_POLL = """
import boto3, sys
from botocore.config import Config
sqs = boto3.client("sqs", config=Config(read_timeout=70, retries={"total_max_attempts": 1}))
print(sqs.receive_message(QueueUrl=sys.argv[1], WaitTimeSeconds=20), flush=True)
"""


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    yield from running_stack(redis_server, tmp_path_factory.mktemp("polls"), orchestrator=False, worker=False)


def client(stack: ApiStack, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=stack.url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=Config(read_timeout=70, retries={"total_max_attempts": 1}),
    )


def blocked_reads(connection: redis.Redis) -> int:
    """Connections blocked in Redis on a stream read right now (what a waiting long poll does)."""
    return sum(
        1 for c in connection.client_list() if c["cmd"] in ("xread", "xreadgroup") and "b" in c["flags"]
    )


class Polls:
    """``count`` ReceiveMessage calls with ``WaitTimeSeconds=20``, each from a thread of its own."""

    def __init__(self, stack: ApiStack, queue: str, count: int) -> None:
        clients = [client(stack, "sqs") for _ in range(count)]  # made here: making them is not thread-safe
        self.sqs, self.queue = clients[0], queue
        self.answers: list[dict[str, Any]] = []
        self.failures: list[Exception] = []
        self.threads = [
            threading.Thread(target=self._poll, args=(sqs, queue), daemon=True) for sqs in clients
        ]
        for thread in self.threads:
            thread.start()

    def _poll(self, sqs: Any, queue: str) -> None:
        try:
            self.answers.append(sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=POLL_SECONDS))
        except Exception as failure:
            self.failures.append(failure)

    def pending(self) -> int:
        return sum(1 for thread in self.threads if thread.is_alive())

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=POLL_SECONDS + FINISH_SECONDS)

    def end_early(self) -> None:
        """End every poll still waiting by deleting its queue (each answers QueueDoesNotExist).

        A test that has seen what it needs while they wait spares the rest of their 20 s.
        """
        self.sqs.delete_queue(QueueUrl=self.queue)
        self.join()
        assert all(isinstance(f, self.sqs.exceptions.QueueDoesNotExist) for f in self.failures), self.failures


def test_other_calls_answer_while_more_long_polls_wait_than_serve_has_threads(stack: ApiStack) -> None:
    sqs, sfn = client(stack, "sqs"), client(stack, "stepfunctions")
    empty = sqs.create_queue(QueueName=f"idle-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    connection = redis.Redis.from_url(stack.env["REDIS_URL"])
    polls = Polls(stack, empty, POLLS)
    try:
        # Enough polls waiting to have filled every thread the server had for synchronous work.
        eventually(lambda: blocked_reads(connection) >= POOL_THREADS, "the long polls to wait in Redis")

        queues = sqs.list_queues()
        machines = sfn.list_state_machines()

        still_waiting = polls.pending()
        assert still_waiting == POLLS, f"answered only once {POLLS - still_waiting} polls had ended"
        assert empty in queues["QueueUrls"]
        assert "stateMachines" in machines
    finally:
        polls.end_early()
    assert len(polls.failures) == POLLS, "a poll on an empty queue answered before its wait"


def test_a_message_sent_during_a_long_poll_is_received_well_before_the_wait_ends(stack: ApiStack) -> None:
    sqs = client(stack, "sqs")
    queue = sqs.create_queue(QueueName=f"soon-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    connection = redis.Redis.from_url(stack.env["REDIS_URL"])
    idle = Polls(stack, sqs.create_queue(QueueName=f"idle-{uuid.uuid4().hex[:8]}")["QueueUrl"], 1)
    waiting = Polls(stack, queue, 1)
    try:
        eventually(lambda: blocked_reads(connection) >= 2, "both long polls to wait in Redis")
        sqs.send_message(QueueUrl=queue, MessageBody="worth the wait")
        waiting.join()

        # The poll on the idle queue, started first, still waits: the message came before 20 s.
        assert idle.pending() == 1
        assert [m["Body"] for m in waiting.answers[0]["Messages"]] == ["worth the wait"]
    finally:
        idle.end_early()
    assert not idle.answers, "the idle poll answered before its wait"


def test_a_long_poll_on_an_empty_queue_answers_empty_after_its_wait(stack: ApiStack) -> None:
    sqs = client(stack, "sqs")
    queue = sqs.create_queue(
        QueueName=f"short-{uuid.uuid4().hex[:8]}", Attributes={"ReceiveMessageWaitTimeSeconds": "1"}
    )["QueueUrl"]
    began = time.monotonic()
    answer = sqs.receive_message(QueueUrl=queue)  # the queue's own wait: 1 s
    assert "Messages" not in answer
    assert time.monotonic() - began >= 1.0


def test_a_long_poll_on_a_queue_deleted_meanwhile_answers_queue_does_not_exist(stack: ApiStack) -> None:
    sqs = client(stack, "sqs")
    queue = sqs.create_queue(QueueName=f"doomed-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    connection = redis.Redis.from_url(stack.env["REDIS_URL"])
    failures: list[Exception] = []

    def poll() -> None:
        try:
            client(stack, "sqs").receive_message(QueueUrl=queue, WaitTimeSeconds=POLL_SECONDS)
        except Exception as error:
            failures.append(error)

    waiting = threading.Thread(target=poll, daemon=True)
    waiting.start()
    eventually(lambda: blocked_reads(connection) >= 1, "the long poll to wait in Redis")
    sqs.delete_queue(QueueUrl=queue)
    waiting.join(timeout=POLL_SECONDS + FINISH_SECONDS)

    [failure] = failures
    assert isinstance(failure, sqs.exceptions.QueueDoesNotExist), failure


def test_a_poll_whose_caller_hung_up_takes_no_message_with_it(stack: ApiStack) -> None:
    sqs = client(stack, "sqs")
    queue = sqs.create_queue(QueueName=f"gone-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    connection = redis.Redis.from_url(stack.env["REDIS_URL"])
    env = {k: v for k, v in stack.env.items() if not k.startswith("REDSTEP_")}
    env.update(
        AWS_ENDPOINT_URL=stack.url,
        AWS_ACCESS_KEY_ID=ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY,
        AWS_DEFAULT_REGION=REGION,
    )
    idle = Polls(stack, sqs.create_queue(QueueName=f"idle-{uuid.uuid4().hex[:8]}")["QueueUrl"], 1)
    consumer = subprocess.Popen([sys.executable, "-c", HANG_UP_POLL, queue], env=env, stdout=subprocess.PIPE)
    try:
        eventually(lambda: blocked_reads(connection) >= 2, "both long polls to wait in Redis")
        consumer.kill()  # stopped mid-poll: its HTTP connection closes
        consumer.wait(timeout=30)
        # Only the idle queue's poll keeps waiting, over several of the wait's slices.
        for _ in range(3):
            eventually(lambda: blocked_reads(connection) == 1, "serve to drop the poll nobody reads")
            time.sleep(1.0)
        sqs.send_message(QueueUrl=queue, MessageBody="for whoever asks next")
        [message] = sqs.receive_message(QueueUrl=queue, AttributeNames=["All"])["Messages"]

        assert idle.pending() == 1  # all of this happened within that poll's 20 s
        assert message["Body"] == "for whoever asks next"
        assert message["Attributes"]["ApproximateReceiveCount"] == "1"
    finally:
        consumer.kill()
        idle.end_early()


def test_other_calls_answer_while_more_stops_wait_for_an_orchestrator_than_serve_has_threads(
    stack: ApiStack,
) -> None:
    # No orchestrator runs beside this serve: each StopExecution waits its whole 10 s for one.
    sfn = client(stack, "stepfunctions")
    machine = sfn.create_state_machine(name=unique("held"), definition=wait_machine(), roleArn=role_arn())
    arns = [
        sfn.start_execution(stateMachineArn=machine["stateMachineArn"])["executionArn"] for _ in range(POLLS)
    ]
    connection = redis.Redis.from_url(stack.env["REDIS_URL"])
    events = Keys(stack.prefix).events
    asked_before = connection.xlen(events)
    clients = [client(stack, "stepfunctions") for _ in arns]
    answers: list[dict[str, Any]] = []
    stops = [
        threading.Thread(
            target=lambda c=c, a=a: answers.append(c.stop_execution(executionArn=a)), daemon=True
        )
        for c, a in zip(clients, arns, strict=True)
    ]
    for thread in stops:
        thread.start()
    try:
        # Every stop was taken up (each appends its request to the orchestrators' events).
        eventually(lambda: connection.xlen(events) - asked_before >= POLLS, "every stop to be asked")

        machines = sfn.list_state_machines()

        still_waiting = sum(1 for thread in stops if thread.is_alive())
        assert still_waiting == POLLS, f"answered only once {POLLS - still_waiting} stops had ended"
        assert machine["stateMachineArn"] in [m["stateMachineArn"] for m in machines["stateMachines"]]
    finally:
        for thread in stops:
            thread.join(timeout=FINISH_SECONDS)
    assert len(answers) == POLLS and all("stopDate" in answer for answer in answers)
