"""Functions the stack tests' workers load with ``--functions``: they say where and when they ran."""

from __future__ import annotations

import os
import time
from typing import Any


def sleep_and_report(event: Any, context: Any) -> dict[str, Any]:
    """Sleep ``event["seconds"]`` and return the worker's pid and the start and end times.

    Everything else in the event comes back under ``"event"``, so a test can tell the calls apart.
    """
    started = time.time()
    time.sleep(float(event.get("seconds", 1.0)))
    return {"pid": os.getpid(), "start": started, "end": time.time(), "event": event}


def remember_task_token(event: Any, context: Any) -> None:
    """Store the task token the state machine passed, under the key the event names.

    A callback task's result is ignored: the execution waits for SendTaskSuccess instead.
    """
    context.redis.set(event["key"], event["token"])
