"""RQ's bookkeeping of a job, recorded to go inside the worker's own script calls.

RQ writes its records of a job (the worker's state, the job's status, its execution and
registries) in transactions of their own, a dozen commands each that redis-py packs and whose
replies it parses one by one. A TaskWorker has RQ's own methods queue those writes on a pipeline
that is never sent, and passes them to the script it calls anyway at that moment: START before a
job runs (lua/start_tasks.lua), the reports after it (lua/append_reports.lua). Redis applies them
in that script (lua/recorded_commands.lua), atomically with it; RQ's code stays the one that
knows RQ's keys.
"""

from __future__ import annotations

from redis import Redis
from redis.client import Pipeline
from redis.typing import EncodableT

from orchestrator.protocol import json_text

NO_COMMANDS: tuple[EncodableT, ...] = ("[]",)


def recorder(connection: Redis) -> Pipeline:
    """A pipeline for RQ's methods to queue writes on; :func:`recorded` takes them off unsent."""
    return connection.pipeline(transaction=False)


def recorded(pipeline: Pipeline) -> list[EncodableT]:
    """The commands queued on ``pipeline`` as the one argument recorded_commands.lua reads; emptied.

    A JSON array of commands, each an array of its words as text, the command's name first.
    One argument rather than each word as its own: redis-py encodes and packs every argument in
    Python, and a job's start alone records 72 words (53 against 14 us per call, packed).
    Each word's text is what redis-py would have sent: a float's repr, an int's digits, an
    enum's value (RQ's states are str enums), bytes as the UTF-8 text they hold.

    Raises:
        ValueError: when a word is bytes that are not UTF-8 (RQ's bookkeeping never has any).
    """
    commands = [[_text(word) for word in arguments] for arguments, _options in pipeline.command_stack]
    pipeline.reset()
    return [json_text.dumps(commands)]


def _text(word: object) -> object:
    kind = type(word)
    if kind is str:
        return word
    if kind is float:
        return repr(word)
    if kind is int:
        return str(word)
    if isinstance(word, str):
        return str.__str__(word)  # an enum's value, as redis-py encodes a str subclass
    if isinstance(word, bytes):
        return word.decode("utf-8")
    raise TypeError(f"a recorded command's word {word!r} is not text, bytes or a number")
