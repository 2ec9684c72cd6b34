"""Whatever is stored, every listing prints: JSON that decodes back to it, text that cannot forge a terminal.

Anyone who can write to Redis (a library caller, a function's output, a publisher on the topic)
may store text no UTF-8 stdout can encode (a lone surrogate), characters that move or hide what
a terminal shows (U+202E, ESC, C1 controls) and text that looks like rich markup. Each test
stores such text the way those writers do and runs the real CLI on it.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
import redis
from rich.console import Console

from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import Keys
from orchestrator.settings import Settings
from producer.cli.subscribe_view import human_line
from producer.cli.views import mapping_table, printable

KEYS = Keys("t")
# A lone surrogate, a right-to-left override, text that reads as rich markup, an ANSI colour
# escape and a C1 control (NEL): each one crashed a listing or reached the terminal as it was.
HOSTILE = "\ud800 \u202egnp.exe [/bold] \x1b[31mred\x85"
RAW_CONTROLS = ("\u202e", "\x1b", "\x85")
# ESC shows as \x1b in plain text and as JSON's own \u001b inside a JSON value.
SHOWN_ESCAPED = ("\\ud800", "\\u202e", "[/bold]", "[31mred", "\\x85")
ECHO = {"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "End": True}}}


def redstep(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    # Wide enough that rich wraps no cell, so an escape is never split across two lines.
    wide = {**env, "COLUMNS": "400"}
    command = [sys.executable, "-m", "producer.cli", *args]
    return subprocess.run(command, env=wide, capture_output=True, timeout=60)


def printed(result: subprocess.CompletedProcess[bytes]) -> str:
    """What the command printed, which must be valid UTF-8 after an exit 0."""
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout.decode("utf-8")


def assert_escaped_for_people(text: str) -> None:
    for escaped in SHOWN_ESCAPED:
        assert escaped in text
    for raw in RAW_CONTROLS:
        assert raw not in text


@pytest.fixture
def echoed(redis_client: redis.Redis, settings: Settings) -> str:
    """The name of a finished execution whose input and output hold HOSTILE, started by a library caller."""
    client = Client(redis_client, settings)
    client.register_machine("Echo", ECHO)
    name = client.start_execution("Echo", {"name": HOSTILE})
    assert client.wait(name, timeout=30)["status"] == "SUCCEEDED"
    return name


def test_executions_list_json_prints_the_stored_text_back_exactly(
    echoed: str, subprocess_env: dict[str, str]
) -> None:
    (execution,) = json.loads(printed(redstep(subprocess_env, "executions", "list", "--json")))

    assert execution["name"] == echoed
    assert execution["input"] == {"name": HOSTILE}
    assert execution["output"] == {"name": HOSTILE}


def test_describe_and_history_json_print_the_stored_text_back_exactly(
    echoed: str, subprocess_env: dict[str, str]
) -> None:
    described = json.loads(printed(redstep(subprocess_env, "executions", "describe", echoed, "--json")))
    events = json.loads(printed(redstep(subprocess_env, "executions", "history", echoed, "--json")))

    assert described["output"] == {"name": HOSTILE}
    assert events[0]["type"] == "ExecutionStarted"
    assert events[0]["input"] == {"name": HOSTILE}
    assert events[-1]["output"] == {"name": HOSTILE}


@pytest.mark.parametrize("command", [["describe"], ["history"]])
def test_describe_and_history_for_people_show_unprintable_characters_as_escapes(
    echoed: str, subprocess_env: dict[str, str], command: list[str]
) -> None:
    text = printed(redstep(subprocess_env, "executions", *command, echoed))

    assert_escaped_for_people(text)


def test_an_execution_name_like_rich_markup_is_listed_as_it_is(
    redis_client: redis.Redis, settings: Settings, subprocess_env: dict[str, str]
) -> None:
    client = Client(redis_client, settings)
    client.register_machine("Echo", ECHO)
    name = client.start_execution("Echo", {}, name="bold-x")
    # A state machine's name is free text on the AWS side too; here it reads as a closing tag.
    client.register_machine("[/bold]", ECHO)
    client.start_execution("[/bold]", {}, name="markup-y")

    text = printed(redstep(subprocess_env, "executions", "list"))

    assert name in text and "markup-y" in text
    assert "[/bold]" in text


def hostile_dead_letter(redis_client: redis.Redis) -> str:
    """A dead letter as a careless tool might have written it: a hostile body, and a reason in
    bytes that are not UTF-8 (a surrogate encoded as CESU-8 does, as Java's modified UTF-8 does)."""
    fields = {
        "body": json.dumps({"name": HOSTILE}),
        "message_id": "letter-1",
        "queue": "dragons",
        "reason": f"gave up on {HOSTILE}".encode("utf-8", "surrogatepass"),
        "receive_count": "5",
    }
    redis_client.sadd(KEYS.dead_letter_queues, "dragons")  # as the move to the dead-letter queue does
    return redis_client.xadd(KEYS.dead_letters("dragons"), fields).decode()  # type: ignore[arg-type]


def test_dlq_list_and_show_print_hostile_letters_escaped_for_people_and_exactly_as_json(
    redis_client: redis.Redis, subprocess_env: dict[str, str]
) -> None:
    letter_id = hostile_dead_letter(redis_client)

    listed = printed(redstep(subprocess_env, "dlq", "list"))
    shown = printed(redstep(subprocess_env, "dlq", "show", letter_id))
    (as_json,) = json.loads(printed(redstep(subprocess_env, "dlq", "list", "--json")))

    # Bytes that are not UTF-8 are kept as \xNN escapes; the rest is escaped as anywhere else.
    # Those escapes are the reason's own backslashes, so they show doubled, as in its JSON.
    assert "gave up on \\\\xed\\\\xa0\\\\x80 \\u202egnp.exe [/bold] \\x1b[31mred\\x85" in listed
    assert_escaped_for_people(shown)
    assert as_json["reason"] == "gave up on \\xed\\xa0\\x80 \u202egnp.exe [/bold] \x1b[31mred\x85"
    assert as_json["body"] == {"name": HOSTILE}


def publish_into_topic_log(redis_client: redis.Redis, subject: str, message: Any) -> None:
    """A notification in the topic's replay log, as another publisher might have put it there."""
    envelope = {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": "arn:aws:sns:us-east-1:000000000000:dragon-notifications",
        "Subject": subject,
        "Message": message,
        "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
    }
    redis_client.xadd(KEYS.topic_log("dragon-notifications"), {"message": json.dumps(envelope)})


def test_subscribe_replays_hostile_notifications_escaped_for_people_and_exactly_as_json(
    redis_client: redis.Redis, subprocess_env: dict[str, str]
) -> None:
    publish_into_topic_log(redis_client, f"Record {HOSTILE}", HOSTILE)

    line = printed(redstep(subprocess_env, "subscribe", "--replay", "--count", "1"))
    as_json = json.loads(printed(redstep(subprocess_env, "subscribe", "--replay", "--count", "1", "--json")))

    assert_escaped_for_people(line)
    assert line.count("\n") == 1  # the NEL, a line break to a terminal, did not split the notification
    assert as_json["Subject"] == f"Record {HOSTILE}"
    assert as_json["Message"] == HOSTILE


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain café 🐉 東京", "plain café 🐉 東京"),
        ("tab\there\nnewline\rcr", "tab\\there\\nnewline\\rcr"),
        ("\x00\x07\x7f\x9b", "\\x00\\x07\\x7f\\x9b"),
        ("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069", "\\u202a\\u202b\\u202c\\u202d\\u202e"
         "\\u2066\\u2067\\u2068\\u2069"),
        ("\u200e\u200f\u061c\u2028\u2029", "\\u200e\\u200f\\u061c\\u2028\\u2029"),
        ("\udfff\ud83d", "\\udfff\\ud83d"),
        ("C:\\dragons\\new \\x1b", "C:\\\\dragons\\\\new \\\\x1b"),
    ],
    ids=["letters-and-emoji-kept", "whitespace", "c0-c1", "bidi-overrides", "marks-and-separators",
         "lone-surrogates", "backslashes-doubled"],
)  # fmt: skip
def test_printable_escapes_exactly_what_could_hide_or_forge_terminal_output(text: str, shown: str) -> None:
    assert printable(text) == shown
    assert printable(text).encode("utf-8")


def test_a_newline_and_a_backslash_before_an_n_print_differently() -> None:
    assert printable("line\nbreak") == "line\\nbreak"
    assert printable("line\\nbreak") == "line\\\\nbreak"


def test_a_json_value_for_people_keeps_its_own_escapes_single() -> None:
    """JSON already writes a backslash as two, and a newline as a backslash and an n."""
    console = Console(file=io.StringIO(), width=400)
    console.print(mapping_table("input", {"value": {"newline": "a\nb", "backslash": "a\\nb"}}))

    assert '{"newline":"a\\nb","backslash":"a\\\\nb"}' in console.file.getvalue()


def test_dlq_list_tells_a_newline_from_a_backslash_before_an_n(
    redis_client: redis.Redis, subprocess_env: dict[str, str]
) -> None:
    redis_client.sadd(KEYS.dead_letter_queues, "dragons")
    for n, reason in enumerate(["newline:a\nb.", "backslash:a\\nb."]):
        fields = {"body": "{}", "message_id": f"letter-{n}", "queue": "dragons", "reason": reason}
        redis_client.xadd(KEYS.dead_letters("dragons"), fields)  # type: ignore[arg-type]

    listed = printed(redstep(subprocess_env, "dlq", "list"))

    assert "newline:a\\nb." in listed
    assert "backslash:a\\\\nb." in listed


def test_a_notification_for_people_doubles_the_backslashes_of_text_not_of_json() -> None:
    as_text = human_line({"Timestamp": "t", "Subject": "C:\\lair", "Message": "a\\nb"})
    as_json = human_line({"Timestamp": "t", "Subject": "s", "Message": {"m": "a\\nb"}})

    assert as_text == "t  C:\\\\lair  a\\\\nb"
    assert as_json == 't  s  {"m":"a\\\\nb"}'
