"""What the proxy recorded: task counts by status, read straight from its database.

A benchmark of a proxy that drops records is meaningless, so every recorded phase is checked:
the tasks that appeared must account for every response the load generator received.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass

_QUERY = "SELECT status, count(*) FROM tasks GROUP BY status"
_UNFINISHED = ("pending", "streaming")


class TaskCounts:
    """Reads `tasks` by status from a SQLite file or a Postgres database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._runner: asyncio.Runner | None = None
        self._pg = None

    def counts(self) -> Counter[str]:
        if self.url.startswith("sqlite"):
            path = self.url.split("///", 1)[1]
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
                return Counter(dict(db.execute(_QUERY).fetchall()))
        return self._postgres_counts()

    def _postgres_counts(self) -> Counter[str]:
        import asyncpg

        if self._runner is None:
            self._runner = asyncio.Runner()
            self._pg = self._runner.run(asyncpg.connect(_asyncpg_dsn(self.url)))
        rows = self._runner.run(self._pg.fetch(_QUERY))
        return Counter({row[0]: row[1] for row in rows})

    def close(self) -> None:
        if self._runner is not None:
            self._runner.run(self._pg.close())
            self._runner.close()
            self._runner = None

    def settle(self, timeout: float = 15.0) -> Counter[str]:
        """Counts once the writer has caught up: no unfinished task and two equal readings."""
        deadline = time.monotonic() + timeout
        previous = None
        while True:
            current = self.counts()
            done = not any(current[s] for s in _UNFINISHED)
            if (done and current == previous) or time.monotonic() > deadline:
                return current
            previous = current
            time.sleep(0.25)


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@dataclass(frozen=True, slots=True)
class RecordCheck:
    """Tasks that appeared during a phase against what should have: the 2xx responses the
    client counted (tracking on), or none at all (tracking off)."""

    expected: int
    new_tasks: int
    completed: int
    other: dict[str, int]
    slack: int  # requests in flight when wrk stopped may be recorded as cancelled

    @property
    def ok(self) -> bool:
        unfinished = sum(self.other.get(s, 0) for s in _UNFINISHED)
        extra = self.new_tasks - self.expected
        return (
            unfinished == 0
            and self.expected <= self.completed <= self.expected + self.slack
            and 0 <= extra <= self.slack
        )

    def as_dict(self) -> dict:
        return {
            "expected": self.expected,
            "new_tasks": self.new_tasks,
            "completed": self.completed,
            "other": self.other,
            "ok": self.ok,
        }


def check(before: Counter[str], after: Counter[str], expected: int, slack: int) -> RecordCheck:
    delta = after - before
    other = {status: n for status, n in delta.items() if status != "completed"}
    return RecordCheck(expected, sum(delta.values()), delta["completed"], other, slack)
