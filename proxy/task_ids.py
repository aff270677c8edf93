"""Client-chosen task ids (`X-Task-Id`): a duplicate is refused (409) before anything is
forwarded, whether the id belongs to a call in flight here, to a record not yet stored (both in
`InFlightTasks`), or to a task the database already has.

The database lookup is an ordinary query on the app's engine, bounded by `timeout`: when the
database does not answer in time the id is taken as new rather than failing the call
(recording never breaks proxying; the later insert of a true duplicate changes nothing).
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.inflight import InFlightTasks
from persistence.queries.tasks import task_exists
from proxy.observability import Logger


class TaskIds:
    def __init__(
        self, inflight: InFlightTasks, engine: AsyncEngine, log: Logger, timeout: float = 0.5
    ) -> None:
        self._inflight = inflight
        self._engine = engine
        self._log = log
        self._timeout = timeout

    async def claim(self, task_id: str) -> bool:
        """Take `task_id` for a call; False when it is a duplicate. A claimed id is released
        by the recorder once the call's final record is stored, or by `release`."""
        if not self._inflight.claim(task_id):
            return False
        if await self._stored(task_id):
            self._inflight.release(task_id)
            return False
        return True

    def release(self, task_id: str) -> None:
        """The call was refused before anything was forwarded: it records nothing."""
        self._inflight.release(task_id)

    async def _stored(self, task_id: str) -> bool:
        try:
            async with asyncio.timeout(self._timeout), self._engine.connect() as conn:
                return await task_exists(conn, task_id)
        except Exception as error:  # fails open: see the module docstring
            self._log.warning("task_id_lookup_failed", task_id=task_id, error=type(error).__name__)
            return False
