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

NO_COMMANDS: tuple[EncodableT, ...] = (0,)


def recorder(connection: Redis) -> Pipeline:
    """A pipeline for RQ's methods to queue writes on; :func:`recorded` takes them off unsent."""
    return connection.pipeline(transaction=False)


def recorded(pipeline: Pipeline) -> list[EncodableT]:
    """The commands queued on ``pipeline``, as recorded_commands.lua reads them; the pipeline is emptied.

    Each command is its word count, then its words, and the whole is preceded by its length.
    The words stay as RQ gave them: the script call encodes them once, as the pipeline would have.
    """
    words: list[EncodableT] = []
    for arguments, _options in pipeline.command_stack:
        words.append(len(arguments))
        words.extend(arguments)
    pipeline.reset()
    return [len(words), *words]
