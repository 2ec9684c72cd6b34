"""The RQ job class a redstep worker accepts: JSON only, and run_tasks only.

RQ resolves a job's function and callbacks by importing the dotted names the job carries.
A worker that took any name would run whatever a writer to its queue asked for, so this
class runs ``worker.entry.run_tasks`` and nothing else, and never imports a callback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rq.job import Job
from rq.serializers import JSONSerializer

from worker.entry import TASK_ENTRY, run_tasks

SERIALIZER = JSONSerializer
"""Jobs are JSON at rest; a pickled job fails to decode and is never unpickled."""


class ForbiddenJob(Exception):
    """The job asks for something other than run_tasks, so it is failed without running."""


class TaskJob(Job):
    """An RQ job that can only run ``run_tasks``."""

    @property
    def func(self) -> Callable[..., Any]:
        """run_tasks, when that is all the job asks for.

        Raises:
            ForbiddenJob: when the job names another function, a bound instance or a callback.
        """
        if self.func_name != TASK_ENTRY or self.instance is not None:
            raise ForbiddenJob(f"a redstep worker runs {TASK_ENTRY} only, not {self.func_name!r}")
        callbacks = [self._success_callback_name, self._failure_callback_name, self._stopped_callback_name]
        if any(callbacks):
            raise ForbiddenJob(f"a redstep worker runs no job callbacks: {[c for c in callbacks if c]}")
        return run_tasks

    # RQ calls these even for a job that failed before running; none is ever imported.
    @property
    def success_callback(self) -> None:
        return None

    @property
    def failure_callback(self) -> None:
        return None

    @property
    def stopped_callback(self) -> None:
        return None
