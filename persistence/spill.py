"""The spill rule: which records waiting in memory go to the spool, and when.

By count, always: memory never holds more than `queue_size` records. By age, only while the
database fails or a write hangs (`DatabaseHealth.struggling`): then no record waits in memory
longer than `spool_after` seconds (plus one fsync). A database that is merely behind under load
catches up by itself, and spilling its backlog would spend CPU (encode, fsync, read back,
decode) exactly when the process is busiest. Each spill is one append and one fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Sequence

from persistence.backlog import Backlog
from persistence.health import DatabaseHealth
from persistence.record import CallRecord

log = logging.getLogger(__name__)


class Spiller:
    def __init__(
        self,
        backlog: Backlog,
        health: DatabaseHealth,
        spool_after: float,
        clock: Callable[[], float],
        on_spilled: Callable[[Sequence[CallRecord]], None],
    ) -> None:
        self._backlog = backlog
        self._health = health
        self._spool_after = spool_after
        self._clock = clock
        self._on_spilled = on_spilled
        self._now = asyncio.Event()
        self.broken = False  # the spool cannot be written: memory falls back to dropping
        self.spooled = 0  # records appended to the spool (some are then written, too)

    def wake(self) -> None:
        """Memory holds more than `queue_size`: spill at once rather than at the next tick."""
        self._now.set()

    async def run(self) -> None:
        tick = max(0.005, self._spool_after / 2)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._now.wait(), tick)
            self._now.clear()
            await self.spill(tick if self._health.struggling() else math.inf)

    async def spill(self, max_age: float, everything: bool = False) -> None:
        """Append what waited longer than `max_age` (all of memory with `everything`, or beyond
        `queue_size`) to the spool, and make it durable."""
        spool = self._backlog.spool
        if spool is None or self.broken:
            return
        try:
            moved = self._backlog.spill(self._clock(), max_age, everything)
            if moved:
                await asyncio.to_thread(spool.sync)
        except OSError:
            log.exception("the spool %s cannot be written; falling back to memory", spool.path)
            self.broken = True
            return
        self.spooled += len(moved)
        self._on_spilled(moved)
