"""Dead letters (the SQS dead-letter queue): inspect them, send them back, or drop them.

A message that was received ``max_receive_count`` times without its execution starting
moves from ``{p}:queue:<name>`` to ``{p}:dlq:<name>`` with its reason and receive count
(see :mod:`orchestrator.runtime.sources`), and the queue's name joins ``{p}:dlq-queues`` in
the same transaction: that set, not a SCAN of key names, says which queues have letters.
A dead letter's id is its entry id in the dead-letter stream; its ``message_id`` is the
message's own id, the name its execution gets.

Redriving sends the body back to its queue with that message id, as SQS's
StartMessageMoveTask moves a message back whole. A dead letter's execution never started
(that is why it is a dead letter), so the redriven message starts it under the name the
producer was given. Should the execution exist after all (an orchestrator started it in
the moment another gave up on the message), the redriven message only acknowledges itself
instead of running the record twice. A letter without a message id gets a fresh one.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any

import redis

from orchestrator.protocol.decoding import loads, lossless_text
from orchestrator.runtime.keys import BODY_FIELD, Keys
from orchestrator.runtime.optimistic import Attempt, Lost, commit_optimistically, watched_key_changed
from orchestrator.runtime.sources import MESSAGE_ID_FIELD
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

    def queues(self) -> list[str]:
        """The names of the queues that have dead letters.

        Read from ``{p}:dlq-queues``, which the move to a dead-letter queue adds to (no SCAN).
        A queue whose letters were all redriven stays in the set and is skipped here.
        """
        names = sorted(lossless_text(name) for name in self.redis.smembers(self.keys.dead_letter_queues))
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.xlen(self.keys.dead_letters(name))
        return [name for name, count in zip(names, pipe.execute(), strict=True) if count]

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
        """Send dead letters back to their queues with their message ids; returns those ids.

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
            message_id = self.redrive_one(letter)
            if message_id is not None:
                sent.append(message_id)
        return sent

    def redrive_one(self, letter: DeadLetter) -> str | None:
        """Move one letter back to its queue; its message id, or None when it is gone already.

        The move is one transaction on the watched dead-letter stream, so two people redriving
        one letter at once send it once (the other finds it gone). A stream that keeps
        changing under it raises :class:`~orchestrator.runtime.optimistic.CommitConflict`.
        """
        dead, source = self.keys.dead_letters(letter.queue), self.keys.queue(letter.queue)
        message_id = letter.message_id or str(uuid.uuid4())
        with self.redis.pipeline(transaction=True) as pipe:

            def attempt(_: Attempt) -> str | Lost | None:
                try:
                    pipe.watch(dead)
                    entries = pipe.xrange(dead, letter.id, letter.id)
                    if not entries:
                        return None
                    # The stored body, byte for byte: a letter that is not JSON goes back as it came.
                    body = entries[0][1].get(BODY_FIELD.encode(), entries[0][1].get(BODY_FIELD))
                    if body is None:
                        return None
                    pipe.multi()
                    pipe.xadd(source, {BODY_FIELD: body, MESSAGE_ID_FIELD: message_id})
                    pipe.xdel(dead, letter.id)
                    pipe.execute()
                    return message_id
                except redis.WatchError:
                    return watched_key_changed(dead)  # maybe a new letter: look again

            return commit_optimistically(f"the redrive of dead letter {letter.id}", attempt)

    def purge(self, queue: str | None = None) -> int:
        """Delete the dead letters of one queue or of all; returns how many there were."""
        names = [queue] if queue else self.queues()
        pipe = self.redis.pipeline(transaction=True)
        for name in names:
            pipe.xlen(self.keys.dead_letters(name))
        for name in names:
            pipe.delete(self.keys.dead_letters(name))
        if names:
            pipe.srem(self.keys.dead_letter_queues, *names)
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
        message_id=values.get(MESSAGE_ID_FIELD, ""),
        reason=values.get("reason", ""),
        receive_count=int(count) if count.isdigit() else 0,
        body=body,
    )
