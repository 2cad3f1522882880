"""One owner for tasks that callbacks start: connections, checker waiters, D-Bus replies.

Rules of this module:

1. Work that starts inside a task's scope belongs in an ``asyncio.TaskGroup``. A
   :class:`TaskOwner` is for work started from plain callbacks (a D-Bus message handler, a
   checker being stopped, the accept loop's per-connection work), where no ``async with`` can
   reach: it keeps a strong reference to every task until it ends (the loop keeps only weak
   ones) and ends them all in :meth:`TaskOwner.aclose`.
2. Unlike a TaskGroup, one failed task does not cancel its siblings: a bug while serving one
   connection is logged with its traceback and the others carry on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from typing import Any

log = logging.getLogger("mandos")


class TaskOwner:
    """Starts tasks, keeps them until they end, logs their failures, and ends them all."""

    def __init__(self, what: str) -> None:
        """``what`` names the work in the log line of a failure ("serving a connection")."""
        self._what = what
        self._tasks: dict[asyncio.Task[Any], None] = {}  # in start order: oldest first

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        """The running tasks, oldest first."""
        return iter(list(self._tasks))

    def start(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``work`` in a task owned by this owner."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks[task] = None
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.pop(task, None)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("Internal error while %s", self._what, exc_info=exc)

    async def join(self) -> None:
        """Wait until every task has ended by itself."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    async def aclose(self) -> None:
        """Cancel every task and wait until all have ended."""
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
