"""Crash recovery: what a dead airuns process left behind is replayed or closed.

One pass (`Recovery.run`, at start and then every heartbeat interval):
1. Spools in the spool directory whose lock is free belong to dead processes: they are locked,
   replayed in order with `apply_batch` (idempotent, so a spool replayed twice after a crash
   mid-replay counts nothing twice), then removed.
2. Tasks still `pending`/`streaming` whose instance is dead — its spool was just replayed, its
   lease expired, or it has no `instances` row at all — are finished as `error` with
   `STOPPED_MESSAGE`. They go through `apply_batch` as final records, so the same transition
   that finishes a live call (under a row lock, only from an open status) fixes the run's
   aggregates: a task is closed once even when several processes recover at the same time.
3. The dead instances' rows are removed.

A live instance's tasks are never touched: it holds its spool's lock and renews its lease.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.apply import apply_batch
from persistence.instances import forget
from persistence.models import instances_table as instances
from persistence.models import tasks_table as tasks
from persistence.record import ERROR, OPEN_STATUSES, CallRecord
from persistence.rows import record_from_row
from persistence.spool import Spool, claim_dead_spools
from pricing.table import PriceTable

log = logging.getLogger(__name__)

STOPPED_MESSAGE = "airuns process stopped before the call finished"

Apply = Callable[[Sequence[CallRecord]], Awaitable[None]]


def orphan_record(row: Any) -> CallRecord:
    """The final record closing a task its process never finished: what the row already holds,
    as `error`, with no usage (it was never reported) and no completion time (unknown)."""
    return record_from_row(
        row, status=ERROR, error_message=STOPPED_MESSAGE, usage_source="missing", completed_at=None
    )


class Recovery:
    """Recovers after dead processes on behalf of the live instance `instance_id`."""

    def __init__(
        self,
        engine: AsyncEngine,
        prices: PriceTable,
        instance_id: str,
        spool_dir: str | Path | None,
        batch_size: int = 500,
    ) -> None:
        self._engine = engine
        self._prices = prices
        self._instance_id = instance_id
        self._spool_dir = spool_dir
        self._batch_size = max(1, batch_size)
        self.replayed = 0  # records replayed from dead processes' spools
        self.closed = 0  # orphaned tasks finished as error

    async def run(self, own_spool: Spool | None = None, apply: Apply | None = None) -> None:
        """One pass. `apply` writes a batch (the writer passes its retrying one); errors
        propagate, and the next pass starts over (everything here is idempotent)."""
        apply = apply or self._apply
        dead = claim_dead_spools(self._spool_dir, own_spool) if self._spool_dir else []
        try:
            for spool in dead:
                log.warning("replaying the spool of stopped instance %s", spool.instance_id)
                for batch in spool.batches(self._batch_size):
                    await apply(batch)
                    self.replayed += len(batch)
            await self.close_orphans({s.instance_id for s in dead}, apply)
            for spool in dead:
                spool.discard()
        finally:
            for spool in dead:
                spool.release()

    async def close_orphans(self, dead: set[str], apply: Apply | None = None) -> int:
        """Finish the open tasks of dead instances; returns how many there were."""
        apply = apply or self._apply
        now = datetime.now(UTC)
        async with self._engine.connect() as conn:
            rows = list(await conn.execute(self._orphans_query(dead, now)))
        for start in range(0, len(rows), self._batch_size):
            await apply([orphan_record(row) for row in rows[start : start + self._batch_size]])
        if rows:
            log.warning("closed %d tasks left open by stopped instances", len(rows))
            self.closed += len(rows)
        async with self._engine.begin() as conn:
            await forget(conn, dead, now)
        return len(rows)

    def _orphans_query(self, dead: set[str], now: datetime) -> Any:
        instance = tasks.c.instance_id
        gone = or_(instances.c.id.is_(None), instances.c.expires_at < now)
        if dead:
            gone = or_(gone, instance.in_(sorted(dead)))
        return (
            select(tasks)
            .select_from(tasks.outerjoin(instances, instances.c.id == instance))
            .where(
                tasks.c.status.in_(OPEN_STATUSES),
                or_(instance.is_(None), instance != self._instance_id),
                gone,
            )
            .order_by(tasks.c.created_at, tasks.c.id)
        )

    async def _apply(self, records: Sequence[CallRecord]) -> None:
        async with self._engine.begin() as conn:
            await apply_batch(conn, records, self._prices)
