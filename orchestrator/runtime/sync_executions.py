"""Waiting for an execution's end without polling: what StartSyncExecution holds its request on.

An execution started with ``notify_end`` carries a flag that makes the commit ending it add
``{"status"}`` to ``{p}:ended:{<name>}`` (runtime.transitions.record), in the same atomic
step that ends it. The waiter blocks on that stream with XREAD, which answers at once when
the end was committed before the wait began, and deletes it once read; an announcement
nobody reads (its caller hung up, or its wait ran out) expires instead
(transitions.ENDED_KEEP_SECONDS). Blocking happens in slices, on a connection of its own, so a
lost Redis shows within one slice and no thread is held while an execution runs.
"""

from __future__ import annotations

import time

from orchestrator.runtime.blocking_reads import BLOCK_SLICE_SECONDS, BlockingWaits


class EndWaiter(BlockingWaits):
    """Waits for executions started with ``notify_end`` to end.

    Args:
        settings: the Redis URL and the key prefix.
    """

    async def ended(self, name: str, timeout: float) -> bool:
        """Whether execution ``name`` ended within ``timeout`` seconds (its announcement is consumed)."""
        stream = self.keys.execution_ended(name)
        deadline = time.monotonic() + timeout
        connection = self.connection()
        while (remaining := deadline - time.monotonic()) > 0:
            block_ms = max(1, int(min(remaining, BLOCK_SLICE_SECONDS) * 1000))
            if await connection.xread({stream: "0-0"}, count=1, block=block_ms):
                await connection.delete(stream)
                return True
        return False
