"""One message id, one execution: a send repeated after a lost reply runs its record once.

redis-py sends a command again when the connection drops, so an XADD whose reply was lost
lands twice, under two entry ids. Every message carries a producer-made ``message_id`` that
names its execution; these tests write the repeated entry themselves, as the retry would,
and check what a user sees: executions, notifications, the queue, the dead letters.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator.runtime.client import Client
from orchestrator.runtime.dead_letters import DeadLetters
from orchestrator.runtime.keys import GROUP, Keys
from orchestrator.runtime.loop import Orchestrator
from orchestrator.runtime.machines import register_shipped_machines
from orchestrator.runtime.server import RedisServer
from orchestrator.runtime.sources import EventSourceMapping, send_messages
from orchestrator.settings import Settings
from tests.chaos import wait_until
from tests.runtime_fixtures import all_finished, dragon, drive, one_task_machine

KEYS = Keys("t")
QUEUE = KEYS.queue("dragons")


def resend(redis_client: redis.Redis, body: Any, message_id: str) -> None:
    """Append what ``send_messages`` appended once more, as an XADD retried after a lost reply does."""
    redis_client.xadd(QUEUE, {"body": json.dumps(body), "message_id": message_id})


def notifications(redis_client: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(f[b"message"]) for _, f in redis_client.xrange(KEYS.topic_log("dragon-notifications"))]


def started_count(client: Client, name: str) -> int:
    return [event["type"] for event in client.history(name)].count("ExecutionStarted")


def queue_is_drained(redis_client: redis.Redis) -> bool:
    return redis_client.xlen(QUEUE) == 0 and int(redis_client.xpending(QUEUE, GROUP)["pending"]) == 0


def test_a_record_sent_twice_in_one_batch_runs_once_and_notifies_once(
    redis_client: redis.Redis, settings: Settings
) -> None:
    register_shipped_machines(redis_client, KEYS)
    smaug, puff = send_messages(redis_client, settings, "dragons", [dragon("Smaug"), dragon("Puff")])
    resend(redis_client, dragon("Smaug"), smaug)  # lands in the same batch as the original

    client = drive(redis_client, settings, [Orchestrator(redis_client, settings, "o1")], all_finished(2))

    assert sorted(e["name"] for e in client.list_executions()) == sorted([smaug, puff])
    assert started_count(client, smaug) == 1
    assert Counter(n["Subject"] for n in notifications(redis_client)) == {"Record inserted": 2}
    assert queue_is_drained(redis_client)


def test_a_record_sent_again_after_its_execution_started_runs_once_and_notifies_once(
    redis_client: redis.Redis, settings: Settings
) -> None:
    register_shipped_machines(redis_client, KEYS)
    (smaug,) = send_messages(redis_client, settings, "dragons", [dragon("Smaug")])
    orchestrator = Orchestrator(redis_client, settings, "o1")
    orchestrator.run_once()
    client = Client(redis_client, settings)
    assert client.describe(smaug)["status"] == "RUNNING"

    resend(redis_client, dragon("Smaug"), smaug)  # lands after the original was consumed
    drive(redis_client, settings, [orchestrator], all_finished(1))

    assert [e["name"] for e in client.list_executions()] == [smaug]
    assert started_count(client, smaug) == 1
    assert [n["Subject"] for n in notifications(redis_client)] == ["Record inserted"]
    assert queue_is_drained(redis_client)


def test_executions_are_named_after_the_message_ids_send_messages_returned(
    redis_client: redis.Redis, settings: Settings
) -> None:
    Client(redis_client, settings).register_machine("One", one_task_machine())
    one = settings.model_copy(update={"state_machine": "One"})
    made = send_messages(redis_client, one, "dragons", [{"n": 1}, {"n": 2}])
    given = send_messages(redis_client, one, "dragons", [{"n": 3}], message_ids=["order-3_a"])

    Orchestrator(redis_client, one, "o1").run_once()

    client = Client(redis_client, one)
    assert given == ["order-3_a"]
    assert all(len(i) == 36 and i.count("-") == 4 for i in made)  # UUID-shaped, as AWS names executions
    assert {e["name"] for e in client.list_executions()} == {*made, *given}
    assert [client.describe(i)["input"] for i in [*made, *given]] == [{"n": 1}, {"n": 2}, {"n": 3}]


def test_the_message_ids_redstep_produce_prints_are_the_execution_names(
    redis_client: redis.Redis, settings: Settings, subprocess_env: dict[str, str]
) -> None:
    register_shipped_machines(redis_client, KEYS)
    lines = "\n".join(json.dumps(dragon(f"D{i}")) for i in range(3))
    produced = subprocess.run(
        [sys.executable, "-m", "producer.cli", "produce", "-", "--json"],
        env=subprocess_env, input=lines, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert produced.returncode == 0, produced.stderr
    ids = json.loads(produced.stdout)["message_ids"]

    Orchestrator(redis_client, settings, "o1").run_once()

    client = Client(redis_client, settings)
    assert {e["name"] for e in client.list_executions()} == set(ids)
    assert [client.describe(i)["input"]["dragon_name_str"] for i in ids] == ["D0", "D1", "D2"]


def test_an_entry_without_a_message_id_runs_named_after_its_entry_id(
    redis_client: redis.Redis, settings: Settings
) -> None:
    Client(redis_client, settings).register_machine("One", one_task_machine())
    one = settings.model_copy(update={"state_machine": "One"})
    entry_id = redis_client.xadd(QUEUE, {"body": json.dumps({"n": 1})}).decode()  # by hand, or old producer

    Orchestrator(redis_client, one, "o1").run_once()

    client = Client(redis_client, one)
    assert [e["name"] for e in client.list_executions()] == [entry_id]
    assert client.describe(entry_id)["input"] == {"n": 1}
    assert queue_is_drained(redis_client)


@pytest.mark.parametrize(
    ("message_id", "reason"),
    [
        (b"", "message_id '' is not 1 to 80 ASCII letters, digits, hyphens or underscores"),
        (b"two words", "message_id 'two words' is not 1 to 80"),
        (b"{tag}", "message_id '{tag}' is not 1 to 80"),
        (b"a:b", "message_id 'a:b' is not 1 to 80"),
        (b"x" * 81, "is not 1 to 80"),
        (b"caf\xc3\xa9", "message_id 'caf\u00e9' is not 1 to 80"),
        (b"\xff\xfe", "message_id is not UTF-8 text"),
    ],
    ids=["empty", "space", "braces", "colon", "too-long", "not-ascii", "not-utf8"],
)
def test_an_entry_with_a_bad_message_id_is_moved_aside_with_the_reason_and_the_others_run(
    redis_client: redis.Redis, settings: Settings, message_id: bytes, reason: str
) -> None:
    Client(redis_client, settings).register_machine("One", one_task_machine())
    one = settings.model_copy(update={"state_machine": "One"})
    fields = {b"body": json.dumps({"n": 0}).encode(), b"message_id": message_id}
    bad = redis_client.xadd(QUEUE, fields).decode()
    (good,) = send_messages(redis_client, one, "dragons", [{"n": 1}])

    Orchestrator(redis_client, one, "o1").run_once()

    ((_, aside),) = redis_client.xrange(KEYS.malformed)
    assert aside[b"stream"].decode() == QUEUE and aside[b"id"].decode() == bad
    assert reason in aside[b"reason"].decode()
    assert json.loads(aside[b"fields"])["body"] == json.dumps({"n": 0})
    assert [e["name"] for e in Client(redis_client, one).list_executions()] == [good]
    assert queue_is_drained(redis_client)


def test_send_messages_refuses_bad_message_ids_before_sending_anything(
    redis_client: redis.Redis, settings: Settings
) -> None:
    with pytest.raises(ValueError, match=r"message_ids\[1\] 'no/slash' is not 1 to 80"):
        send_messages(redis_client, settings, "dragons", [{"n": 1}, {"n": 2}], message_ids=["ok", "no/slash"])
    with pytest.raises(ValueError, match="1 message id"):
        send_messages(redis_client, settings, "dragons", [{"n": 1}, {"n": 2}], message_ids=["ok"])

    assert redis_client.xlen(QUEUE) == 0


def wear_out(redis_client: redis.Redis, settings: Settings, count: int) -> None:
    """Let a consumer that never acknowledges turn ``count`` queued messages into dead letters."""
    careless = settings.model_copy(update={"visibility_timeout_seconds": 0.05, "max_receive_count": 1})
    mapping = EventSourceMapping(redis_client, careless, "careless")

    def worn_out() -> bool:
        mapping.poll()
        return redis_client.xlen(KEYS.dead_letters("dragons")) >= count

    wait_until(worn_out, 30, f"{count} dead letter(s)", interval=0.06)


def test_a_redriven_dead_letter_keeps_its_message_id_and_starts_its_execution_under_it(
    redis_client: redis.Redis, settings: Settings
) -> None:
    Client(redis_client, settings).register_machine("One", one_task_machine())
    one = settings.model_copy(update={"state_machine": "One"})
    (message_id,) = send_messages(redis_client, one, "dragons", [{"n": 1}])
    wear_out(redis_client, one, 1)
    (letter,) = DeadLetters(redis_client, one).list()
    assert letter.message_id == message_id

    assert DeadLetters(redis_client, one).redrive([letter.id]) == [message_id]
    Orchestrator(redis_client, one, "o1").run_once()

    client = Client(redis_client, one)
    assert [e["name"] for e in client.list_executions()] == [message_id]
    assert client.describe(message_id)["input"] == {"n": 1}
    assert queue_is_drained(redis_client)


def test_a_redriven_dead_letter_whose_execution_exists_after_all_starts_nothing(
    redis_client: redis.Redis, settings: Settings
) -> None:
    client = Client(redis_client, settings)
    client.register_machine("One", one_task_machine())
    one = settings.model_copy(update={"state_machine": "One"})
    (message_id,) = send_messages(redis_client, one, "dragons", [{"n": 1}])
    wear_out(redis_client, one, 1)
    client.start_execution("One", {"n": 1}, name=message_id)  # one orchestrator started it as another gave up

    DeadLetters(redis_client, one).redrive()
    Orchestrator(redis_client, one, "o1").run_once()

    assert [e["name"] for e in client.list_executions()] == [message_id]
    assert started_count(client, message_id) == 1
    assert queue_is_drained(redis_client)


def test_a_dead_letter_without_a_message_id_is_redriven_under_a_fresh_one(
    redis_client: redis.Redis, settings: Settings
) -> None:
    Client(redis_client, settings).register_machine("One", one_task_machine())
    one = settings.model_copy(update={"state_machine": "One"})
    redis_client.xadd(KEYS.dead_letters("dragons"), {"body": json.dumps({"n": 1}), "queue": "dragons"})
    redis_client.sadd(KEYS.dead_letter_queues, "dragons")  # as the move to the dead-letter queue does

    (message_id,) = DeadLetters(redis_client, one).redrive()
    Orchestrator(redis_client, one, "o1").run_once()

    assert [e["name"] for e in Client(redis_client, one).list_executions()] == [message_id]


def test_one_dead_letter_redriven_by_several_people_at_once_is_sent_once(
    redis_client: redis.Redis, settings: Settings
) -> None:
    (message_id,) = send_messages(redis_client, settings, "dragons", [{"n": 1}])
    wear_out(redis_client, settings, 1)
    (letter,) = DeadLetters(redis_client, settings).list()
    sent: list[list[str]] = []

    def redrive() -> None:
        connection = redis.Redis.from_url(settings.redis_url)
        sent.append(DeadLetters(connection, settings).redrive([letter.id]))
        connection.close()

    threads = [threading.Thread(target=redrive) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(sent) == [[]] * 7 + [[message_id]]
    assert [f[b"message_id"].decode() for _, f in redis_client.xrange(QUEUE)] == [message_id]


@pytest.mark.parametrize("name", ["", "two words", "curly{brace}", "x" * 81, "colon:name"])
def test_a_started_execution_with_a_name_queued_messages_could_not_have_is_refused(
    redis_client: redis.Redis, settings: Settings, name: str
) -> None:
    client = Client(redis_client, settings)
    client.register_machine("One", one_task_machine())
    with pytest.raises(ValueError, match="the execution name"):
        client.start_execution("One", {}, name=name)
    assert client.list_executions() == []


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")], ids=["nan", "inf", "-inf"])
def test_an_input_or_a_message_json_has_no_form_for_is_refused_before_anything_is_written(
    redis_client: redis.Redis, settings: Settings, value: float
) -> None:
    client = Client(redis_client, settings)
    client.register_machine("One", one_task_machine())
    with pytest.raises(ValueError, match="the execution input is not JSON"):
        client.start_execution("One", {"weight": value})
    with pytest.raises(ValueError, match=r"bodies\[1\] is not JSON.*nothing was sent"):
        send_messages(redis_client, settings, "dragons", [{"weight": 1.5}, {"weight": value}])

    assert client.list_executions() == []
    assert redis_client.xlen(Keys(settings.prefix).queue("dragons")) == 0


# -- a produce cut short by a dead Redis, then run again ----------------------------------------

XADD_MARKER = b"\r\nXADD\r\n"  # every XADD command's name; bodies are JSON, which holds no raw CRLF


class CuttingProxy:
    """A TCP hop between one client and Redis that lets ``cut_after`` XADD commands through, then
    calls ``on_cut`` (which kills the server) and drops the connection, refusing any other.

    The cut falls inside a chunk of the producer's pipeline: the server may have received part
    of it, as when Redis dies while a chunk is on the wire.
    """

    def __init__(self, upstream_port: int, cut_after: int, on_cut: Callable[[], None]) -> None:
        self.upstream_port, self.cut_after, self.on_cut = upstream_port, cut_after, on_cut
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        downstream, _ = self.listener.accept()
        self.listener.close()  # a reconnecting client is refused, as by a dead server
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        threading.Thread(target=self.pump, args=(upstream, downstream), daemon=True).start()
        sent, forwarded, searched, seen = bytearray(), 0, 0, 0
        while data := downstream.recv(65536):
            sent += data
            cut = None
            while cut is None and (found := sent.find(XADD_MARKER, searched)) >= 0:
                searched, seen = found + 1, seen + 1
                if seen > self.cut_after:
                    cut = sent.rfind(b"*", 0, found)  # where this command's array header starts
            end = len(sent) if cut is None else cut
            upstream.sendall(sent[forwarded:end])
            forwarded = end
            if cut is not None:
                self.on_cut()
                break
        for end_point in (downstream, upstream):
            end_point.close()

    @staticmethod
    def pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass  # one side was closed: the cut


def test_a_produce_cut_short_by_a_dead_redis_says_how_many_were_queued_and_its_rerun_runs_each_record_once(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    # Given 2,000 records (four chunks of 500), an AOF redis-server, and a produce whose connection
    # dies with the server a quarter of the way into the second chunk
    records = tmp_path / "dragons.ndjson"
    records.write_text("\n".join(json.dumps(dragon(f"D{index}")) for index in range(2000)))
    # fsynced before each reply, as compose runs it: the 500 acknowledged records survive the kill
    server = RedisServer(data_dir=tmp_path, aof=True, appendfsync="always").start()
    proxy = CuttingProxy(server.port, cut_after=625, on_cut=server.kill)
    env = {**subprocess_env, "REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0"}
    command = [sys.executable, "-m", "producer.cli", "produce", str(records), "--json"]
    try:
        cut = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

        # Then the producer says how far it got, and how to go on
        assert cut.returncode == 1
        assert "500 of 2000 record(s) were queued; the next 500 may have been, in part." in cut.stderr
        assert "Run the command again on the same input (key " in cut.stderr
        partial = json.loads(cut.stdout)
        assert (partial["enqueued"], partial["in_doubt"], partial["total"]) == (500, 500, 2000)

        # When Redis is back on its data and the same command runs again
        server = RedisServer(server.port, data_dir=tmp_path, aof=True, appendfsync="always").start()
        env["REDIS_URL"] = server.url
        rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        ids = json.loads(rerun.stdout)["message_ids"]
        assert ids[:500] == partial["message_ids"]

        # Then each record runs once: 2,000 executions, not 2,500, named by the rerun's ids
        connection = redis.Redis.from_url(server.url)
        echo = Settings(redis_url=server.url, prefix="t", state_machine="Echo", poll_interval_seconds=0.01)
        Client(connection, echo).register_machine(
            "Echo", {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
        )
        assert connection.xlen(QUEUE) >= 2500  # the first 500 (and some of the next 500) are there twice
        client = drive(
            connection,
            echo,
            [Orchestrator(connection, echo, "o1")],
            drained(connection),
            120,
            with_worker=False,
        )
        executions = client.list_executions(limit=5000)
        assert sorted(e["name"] for e in executions) == sorted(ids)
        assert {e["status"] for e in executions} == {"SUCCEEDED"}
        connection.close()
    finally:
        server.stop()


def drained(redis_client: redis.Redis) -> Callable[[Client], bool]:
    return lambda client: queue_is_drained(redis_client) and client.status()["executions"]["RUNNING"] == 0
