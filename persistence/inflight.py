"""The one registry of client-chosen task ids in flight in this process.

A duplicate `X-Task-Id` is refused before anything is forwarded (409). The database only knows
a task once its records are written, so the ids between "a call claimed it" and "its final
record is stored (or spooled, or refused)" live here: the handler claims an id on the request
loop, and the recorder releases it from wherever it stores records. `set` operations are atomic
under the GIL, and only the request loop adds, so no lock is needed.
"""

from __future__ import annotations


class InFlightTasks:
    def __init__(self) -> None:
        self._ids: set[str] = set()

    def claim(self, task_id: str) -> bool:
        """Take `task_id` for a call; False when a call under way (or a record not yet stored)
        already has it."""
        if task_id in self._ids:
            return False
        self._ids.add(task_id)
        return True

    def release(self, task_id: str) -> None:
        """The task's final record is stored, spooled or refused, or the call never started."""
        self._ids.discard(task_id)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._ids
