"""Putting validated dragon records on a source queue, in chunks so a progress bar can follow.

Each record's message id, which names its execution, is ``<key>-<position>``: the key is the
caller's idempotency key, else a hash of every record in order, and the position is the
record's index in the input. So a run that stopped halfway and is started again with the same
input (or key) sends each record under the id it had, and a record already queued starts no
second execution; a repeat of a record inside one input is at another position, so it still
runs on its own. The price: the same input sent again on purpose starts nothing while its
executions are retained, unless it is given a new key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence

import redis

from orchestrator.runtime.keys import Keys
from orchestrator.runtime.sources import MESSAGE_ID, send_messages
from orchestrator.settings import Settings
from producer.records import DragonRecord

# Large enough that one round trip carries many records, small enough for a smooth progress bar.
CHUNK_SIZE = 500

# Above this many records the CLI shows a progress bar; below it the bar would only flicker.
PROGRESS_THRESHOLD = 200

# 128 bits of SHA-256: two different inputs never meet by chance, and the ids stay short.
CONTENT_KEY_HEX_DIGITS = 32
MESSAGE_ID_MAX_LENGTH = 80

SINGLE_RECORD_FLAGS = {
    "name": "dragon_name_str",
    "description": "description_str",
    "family": "family_str",
    "city": "location_city_str",
    "state": "location_state_str",
    "country": "location_country_str",
    "neighborhood": "location_neighborhood_str",
    "phone": "reportingPhoneNumber",
    "confirm": "confirmationRequired",
}


def record_from_flags(**flags: object) -> dict[str, object]:
    """The raw record that the single-record flags of ``redstep produce`` describe.

    Flags left unset are omitted, so validation names each missing field.
    """
    return {SINGLE_RECORD_FLAGS[flag]: value for flag, value in flags.items() if value is not None}


class ProduceInterrupted(Exception):
    """Redis failed partway: the first ``queued`` records are on the queue, the next ``in_doubt`` may be.

    Attributes:
        queued: records whose chunk Redis confirmed.
        in_doubt: records of the chunk that failed, some of which may have landed.
        total: records in the input.
        key: the idempotency key the message ids were made from.
        error: what Redis said.
    """

    def __init__(self, queued: int, in_doubt: int, total: int, key: str, error: redis.RedisError) -> None:
        self.queued, self.in_doubt, self.total, self.key, self.error = queued, in_doubt, total, key, error
        super().__init__(f"{queued} of {total} record(s) queued before Redis failed: {error}")

    def advice(self, key_given: bool) -> str:
        """How many records were queued, and how to send the rest without running any twice."""
        again = f"with --idempotency-key {self.key}" if key_given else f"on the same input (key {self.key})"
        return (
            f"{self.queued} of {self.total} record(s) were queued; the next {self.in_doubt} may have been, "
            f"in part. Run the command again {again} to send the rest: each record keeps its message id, "
            "so one already queued starts no second execution."
        )

    def summary(self, queue: str) -> dict[str, object]:
        """What ``redstep produce --json`` prints when Redis failed partway."""
        return {
            "queue": queue,
            "enqueued": self.queued,
            "in_doubt": self.in_doubt,
            "total": self.total,
            "idempotency_key": self.key,
            "message_ids": message_ids_for(self.key, self.queued),
        }


def content_key(records: Sequence[DragonRecord]) -> str:
    """The idempotency key of an input: a hash of its records, in order, however the file was laid out."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(json.dumps(record.body(), sort_keys=True, separators=(",", ":")).encode())
        digest.update(b"\n")
    return digest.hexdigest()[:CONTENT_KEY_HEX_DIGITS]


def idempotency_key_problem(key: str, count: int) -> str:
    """Why ``key`` cannot make the message ids of ``count`` records, as a sentence; ``""`` if it can."""
    longest = MESSAGE_ID_MAX_LENGTH - len(f"-{max(count - 1, 0)}")
    if not MESSAGE_ID.fullmatch(key) or len(key) > longest:
        shown = key if len(key) <= 100 else key[:100] + "..."
        return (
            f"the idempotency key must be 1 to {longest} ASCII letters, digits, hyphens or underscores "
            f"for {count} record(s), as each record's message id, <key>-<position>, names its execution; "
            f"got {shown!r}"
        )
    return ""


def message_ids_for(key: str, count: int) -> list[str]:
    """The message ids of ``count`` records sent under ``key``: ``<key>-<position>``."""
    return [f"{key}-{position}" for position in range(count)]


def started_before(client: redis.Redis, settings: Settings, message_ids: Sequence[str]) -> list[str]:
    """The message ids that already name an execution: sent again, they start nothing new.

    One pipelined EXISTS per id (each execution's keys live in a slot of their own), a chunk per
    round trip.
    """
    keys = Keys(settings.prefix)
    found: list[str] = []
    for start in range(0, len(message_ids), CHUNK_SIZE):
        chunk = message_ids[start : start + CHUNK_SIZE]
        pipe = client.pipeline(transaction=False)
        for message_id in chunk:
            pipe.exists(keys.execution(message_id))
        found += [message_id for message_id, exists in zip(chunk, pipe.execute(), strict=True) if exists]
    return found


def produce(
    client: redis.Redis,
    settings: Settings,
    records: Sequence[DragonRecord],
    queue: str | None = None,
    on_progress: Callable[[int], None] | None = None,
    idempotency_key: str | None = None,
) -> list[str]:
    """Enqueue records that are already validated, in input order, under ids a re-run repeats.

    Args:
        client: the Redis connection.
        settings: where the keys live (prefix) and the default queue.
        records: every record to send; validate them all first (``load_records`` does).
        queue: the source queue; the pipeline's own queue when omitted.
        on_progress: called with the number of records sent by each chunk.
        idempotency_key: what the message ids are made from; a hash of the records by default
            (:func:`content_key`).

    Returns:
        The message ids, one per record; each becomes its execution's name.

    Raises:
        ValueError: the key cannot make valid message ids (see :func:`idempotency_key_problem`).
        ProduceInterrupted: Redis failed partway; it says how many records were queued.
    """
    key = idempotency_key or content_key(records)
    problem = idempotency_key_problem(key, len(records))
    if problem:
        raise ValueError(problem)
    target = queue or settings.source_queue
    message_ids = message_ids_for(key, len(records))
    for start in range(0, len(records), CHUNK_SIZE):
        chunk = records[start : start + CHUNK_SIZE]
        try:
            send_messages(
                client, settings, target, [r.body() for r in chunk], message_ids[start : start + len(chunk)]
            )
        except redis.RedisError as error:
            raise ProduceInterrupted(start, len(chunk), len(records), key, error) from error
        if on_progress:
            on_progress(len(chunk))
    return message_ids
