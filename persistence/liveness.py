"""This process's liveness in a shared database, and the recovery it runs on behalf of others.

- The heartbeat upserts the instance's `instances` row every `heartbeat_interval` seconds; the
  writer's first write waits for it (`registered`), so no one takes its tasks for orphans.
- Every beat, and first once the database answers, `Recovery` replays the spools of dead
  processes and closes the tasks they left open (see `recovery.py`).
- A clean stop removes the row (best effort: it would expire anyway).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.failures import describe_error, is_transient
from persistence.health import DatabaseHealth
from persistence.instances import beat, forget
from persistence.recovery import Apply, Recovery
from persistence.spool import Spool

log = logging.getLogger(__name__)


class Liveness:
    def __init__(
        self,
        engine: AsyncEngine,
        instance_id: str,
        heartbeat_interval: float,
        first_backoff: float,
        health: DatabaseHealth,
        recovery: Recovery,
    ) -> None:
        self._engine = engine
        self._instance_id = instance_id
        self._interval = max(0.01, heartbeat_interval)
        self._first_backoff = first_backoff
        self._health = health
        self._recovery = recovery
        self._started_at = datetime.now(UTC)
        self.registered = asyncio.Event()
        self.retries = 0  # transient failures of heartbeats

    async def heartbeat(self) -> None:
        """Runs until cancelled; backs off while the database fails."""
        delay = self._first_backoff
        failing = ""  # what the last failure was: each distinct one is logged once
        while True:
            try:
                async with asyncio.timeout(max(1.0, self._interval)):
                    async with self._engine.begin() as conn:
                        now = datetime.now(UTC)
                        await beat(conn, self._instance_id, now, self._interval, self._started_at)
            except Exception as error:
                if is_transient(error):
                    self._health.failed()
                    self.retries += 1
                reason = describe_error(error)
                if reason != failing:
                    log.warning(
                        "heartbeat failed (%s); retrying, at least every %gs",
                        reason,
                        self._interval,
                    )
                    failing = reason
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._interval)
                continue
            if failing:
                log.warning("heartbeat stored again: the database answers")
                failing = ""
            self.registered.set()
            self._health.answered()
            delay = self._first_backoff
            await asyncio.sleep(self._interval)

    async def recover(self, own_spool: Spool | None, apply: Apply) -> None:
        """Runs until cancelled: a recovery pass every beat, once registered. `apply` is the
        writer's own write, so replayed records follow its retry and refusal rules."""
        await self.registered.wait()
        while True:
            try:
                await self._recovery.run(own_spool, apply)
            except Exception as error:
                transient = is_transient(error)
                log.warning(
                    "recovery pass failed (%s); retrying later", error, exc_info=not transient
                )
            await asyncio.sleep(self._interval)

    async def forget(self) -> None:
        """A clean stop removes the instance's row."""
        try:
            async with asyncio.timeout(1.0), self._engine.begin() as conn:
                await forget(conn, [self._instance_id], datetime.now(UTC))
        except Exception:
            log.warning("could not remove instance %s", self._instance_id, exc_info=True)
