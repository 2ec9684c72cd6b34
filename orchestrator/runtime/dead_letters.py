"""Dead letters (the SQS dead-letter queue): inspect them, send them back, or drop them.

A message that was received ``max_receive_count`` times without its execution starting
moves from ``{p}:queue:<name>`` to ``{p}:dlq:<name>`` with its reason and receive count
(see :mod:`orchestrator.runtime.sources`). A dead letter's id is its entry id in the
dead-letter stream. Redriving sends its body back to its queue as a *new* message (a new
id, so a new execution), as SQS's StartMessageMoveTask does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import redis

from orchestrator.runtime.decoding import loads, lossless_text
from orchestrator.runtime.keys import BODY_FIELD, Keys
from orchestrator.runtime.store import load_script
from orchestrator.settings import Settings


@dataclass
class DeadLetter:
    """One dead letter: where it came from, why it is here, and what it carries."""

    id: str
    queue: str
    message_id: str
    reason: str
    receive_count: int
    body: Any

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DeadLetters:
    """The dead-letter queues of one installation.

    Args:
        redis_client: the connection.
        settings: the prefix.
    """

    def __init__(self, redis_client: redis.Redis, settings: Settings) -> None:
        self.redis = redis_client
        self.keys = Keys(settings.prefix)
        self._redrive = load_script(redis_client, "redrive_dead_letter")

    def queues(self) -> list[str]:
        """The names of the queues that have dead letters."""
        prefix = self.keys.dead_letters("")
        found = (lossless_text(key)[len(prefix) :] for key in self.redis.scan_iter(f"{prefix}*"))
        return sorted(name for name in found if self.redis.xlen(self.keys.dead_letters(name)))

    def list(self, queue: str | None = None, limit: int = 1000) -> list[DeadLetter]:
        """Dead letters, oldest first, of one queue or of all."""
        letters: list[DeadLetter] = []
        for name in [queue] if queue else self.queues():
            entries = self.redis.xrange(self.keys.dead_letters(name), count=limit - len(letters))
            letters += [letter_of(name, entry_id, fields) for entry_id, fields in entries]
            if len(letters) >= limit:
                break
        return letters

    def show(self, letter_id: str, queue: str | None = None) -> DeadLetter | None:
        """The dead letter with this id (looked for in every queue unless one is named), or None."""
        for name in [queue] if queue else self.queues():
            try:
                entries = self.redis.xrange(self.keys.dead_letters(name), letter_id, letter_id)
            except redis.ResponseError:  # not a stream id at all: no letter has it
                return None
            if entries:
                return letter_of(name, *entries[0])
        return None

    def redrive(self, letter_ids: list[str] | None = None, queue: str | None = None) -> list[str]:
        """Send dead letters back to their queues as new messages; returns the new message ids.

        Args:
            letter_ids: the letters to send; None sends every letter (of ``queue``, or of all).
            queue: only this queue's letters.
        """
        if letter_ids is None:
            chosen = self.list(queue, limit=10**9)
        else:
            found = (self.show(letter_id, queue) for letter_id in letter_ids)
            chosen = [letter for letter in found if letter is not None]
        sent = []
        for letter in chosen:
            keys = [self.keys.dead_letters(letter.queue), self.keys.queue(letter.queue)]
            new_id = self._redrive(keys=keys, args=[letter.id, BODY_FIELD])
            if new_id:
                sent.append(lossless_text(new_id))
        return sent

    def purge(self, queue: str | None = None) -> int:
        """Delete the dead letters of one queue or of all; returns how many there were."""
        names = [queue] if queue else self.queues()
        pipe = self.redis.pipeline(transaction=True)
        for name in names:
            pipe.xlen(self.keys.dead_letters(name))
        for name in names:
            pipe.delete(self.keys.dead_letters(name))
        return sum(pipe.execute()[: len(names)])


def letter_of(queue: str, entry_id: bytes | str, fields: dict[Any, Any]) -> DeadLetter:
    """A dead letter from its stream entry; a body that is not JSON is shown as its text."""
    values = {lossless_text(k): lossless_text(v) for k, v in fields.items()}
    raw = values.get(BODY_FIELD, "")
    try:
        body = loads(raw)
    except ValueError:
        body = raw
    count = values.get("receive_count", "0")
    return DeadLetter(
        id=lossless_text(entry_id),
        queue=values.get("queue", queue),
        message_id=values.get("message_id", ""),
        reason=values.get("reason", ""),
        receive_count=int(count) if count.isdigit() else 0,
        body=body,
    )
