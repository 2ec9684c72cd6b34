"""Putting validated dragon records on a source queue, in chunks so a progress bar can follow."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import redis

from orchestrator.runtime.sources import send_messages
from orchestrator.settings import Settings
from producer.records import DragonRecord

# Large enough that one round trip carries many records, small enough for a smooth progress bar.
CHUNK_SIZE = 500

# Above this many records the CLI shows a progress bar; below it the bar would only flicker.
PROGRESS_THRESHOLD = 200

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


def produce(
    client: redis.Redis,
    settings: Settings,
    records: Sequence[DragonRecord],
    queue: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Enqueue records that are already validated, in input order.

    Args:
        client: the Redis connection.
        settings: where the keys live (prefix) and the default queue.
        records: every record to send; validate them all first (``load_records`` does).
        queue: the source queue; the pipeline's own queue when omitted.
        on_progress: called with the number of records sent by each chunk.

    Returns:
        The message ids, one per record; each becomes its execution's name.
    """
    target = queue or settings.source_queue
    message_ids: list[str] = []
    for start in range(0, len(records), CHUNK_SIZE):
        chunk = records[start : start + CHUNK_SIZE]
        message_ids.extend(send_messages(client, settings, target, [record.body() for record in chunk]))
        if on_progress:
            on_progress(len(chunk))
    return message_ids
