"""The production `Recorder`: a bounded in-memory buffer written to the database in batches.

- `submit()` never waits and never raises: it appends to the buffer and returns. It must be
  called from the event loop the writer runs on.
- A background loop takes up to `batch_size` records once that many are waiting or
  `flush_interval` seconds after the first one arrived, and applies them in one transaction
  (`apply_batch`: a call's start and final record in one batch cost one row write).
- Transient database errors (connection lost, locked, deadlock, …) are retried with capped
  exponential backoff; the batch stays at the head of the line, so nothing is lost or
  reordered. A batch failing for any other reason is retried one task at a time, so a single
  bad record is dropped (counted in `failed`) instead of blocking everything behind it.
- Overflow policy: the buffer holds at most `queue_size` records. When it is full, the oldest
  non-final (start) record is dropped first: its task is still recorded by its final record.
  Only when every buffered record is final is the oldest final record dropped. Drops are
  counted in `dropped`. (A later change spools to disk so no final record is lost.)
- `stop()` drains everything to the database before returning (or until its timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence

from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.apply import apply_batch
from persistence.models import tasks_table
from persistence.rows import coalesce
from pricing.table import PriceTable
from proxy.recording import CallRecord
from proxy.settings import RecordingSettings

log = logging.getLogger(__name__)

# SQLSTATE classes worth retrying: 08 connection, 40 rollback (deadlock, serialization),
# 53 insufficient resources, 57P server shutting down / starting, 55P03 lock not available.
_TRANSIENT_SQLSTATES = ("08", "40", "53", "57P", "55P03")


def is_transient(error: BaseException) -> bool:
    """Whether retrying the same batch later can succeed."""
    if isinstance(error, OSError | sa_exc.OperationalError | sa_exc.InterfaceError):
        return True  # OSError covers refused connections and timeouts
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        sqlstate = getattr(error.orig, "sqlstate", None) or ""
        return sqlstate.startswith(_TRANSIENT_SQLSTATES)
    return False


class BatchWriter:
    """Records calls in the database off the request path; see the module docstring."""

    def __init__(
        self,
        engine: AsyncEngine,
        prices: PriceTable,
        settings: RecordingSettings | None = None,
        *,
        first_backoff: float = 0.05,
        max_backoff: float = 5.0,
        lookup_timeout: float = 0.5,
    ) -> None:
        self._engine = engine
        self._prices = prices
        self._settings = settings or RecordingSettings()
        self._first_backoff, self._max_backoff = first_backoff, max_backoff
        self._lookup_timeout = lookup_timeout
        self._buffer: deque[CallRecord] = deque()
        self._buffered_starts = 0  # non-final records in the buffer: the first to drop
        self._batch: Sequence[CallRecord] = ()  # taken from the buffer, being written
        self._active: set[str] = set()  # tasks whose final record is not written yet
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._closed = False
        self.written = 0  # records committed
        self.dropped = 0  # records dropped because the buffer was full (or after stop)
        self.failed = 0  # records the database refused for good
        self.retries = 0  # transient errors retried

    @property
    def backlog(self) -> int:
        """Records submitted but not yet written."""
        return len(self._buffer) + len(self._batch)

    def submit(self, record: CallRecord) -> None:
        try:
            self._enqueue(record)
        except Exception:  # recording must never break proxying
            log.exception("dropping a call record")
            self.dropped += 1

    def is_task_active(self, task_id: str) -> bool:
        """Whether the task is in flight in this process (its final record is not written)."""
        return task_id in self._active

    async def task_exists(self, task_id: str) -> bool:
        """In flight here or already in the database. Fails open: when the database does not
        answer within `lookup_timeout`, the id is taken as new rather than refusing the call."""
        if task_id in self._active:
            return True
        query = select(tasks_table.c.id).where(tasks_table.c.id == task_id)
        try:
            async with asyncio.timeout(self._lookup_timeout), self._engine.connect() as conn:
                return (await conn.execute(query)).first() is not None
        except Exception:
            log.warning("task id lookup failed; treating %s as new", task_id, exc_info=True)
            return False

    async def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._run(), name="airuns-batch-writer")

    async def stop(self, timeout: float | None = None) -> None:
        """Write everything submitted so far; after `timeout` seconds, give up and log the loss."""
        await self.start()  # so records submitted before start are drained too
        self._stopping = True
        self._arrived.set()
        self._full.set()
        assert self._loop_task is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._loop_task), timeout)
        except TimeoutError:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            log.error("writer stopped with %d records not written", self.backlog)
        finally:
            self._closed = True

    def _enqueue(self, record: CallRecord) -> None:
        if self._closed:
            self.dropped += 1
            return
        if len(self._buffer) >= self._settings.queue_size:
            self._drop_one()
        self._buffer.append(record)
        self._buffered_starts += not record.is_final
        self._active.add(record.task_id)
        self._arrived.set()
        if len(self._buffer) >= self._settings.batch_size:
            self._full.set()

    def _drop_one(self) -> None:
        self.dropped += 1
        if self._buffered_starts:
            index = next(i for i, r in enumerate(self._buffer) if not r.is_final)
            del self._buffer[index]
            self._buffered_starts -= 1
        else:
            self._active.discard(self._buffer.popleft().task_id)

    async def _run(self) -> None:
        while await self._next_batch_ready():
            self._batch = self._take()
            await self._write(self._batch)
            self._forget(self._batch)
            self._batch = ()

    async def _next_batch_ready(self) -> bool:
        """Wait for records, then for a full batch or `flush_interval`; False once stopped
        and drained."""
        while not self._buffer:
            if self._stopping:
                return False
            self._arrived.clear()
            await self._arrived.wait()
        if len(self._buffer) < self._settings.batch_size and not self._stopping:
            self._full.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self._settings.flush_interval)
        return True

    def _take(self) -> list[CallRecord]:
        count = min(len(self._buffer), max(1, self._settings.batch_size))
        batch = [self._buffer.popleft() for _ in range(count)]
        self._buffered_starts -= sum(not r.is_final for r in batch)
        return batch

    def _forget(self, batch: Sequence[CallRecord]) -> None:
        for record in batch:
            if record.is_final:
                self._active.discard(record.task_id)

    async def _write(self, batch: Sequence[CallRecord]) -> None:
        try:
            await self._apply_until_done(batch)
        except Exception:
            log.warning("batch of %d records refused; retrying task by task", len(batch))
            for record in coalesce(batch):
                await self._write_alone(record, batch)
        else:
            self.written += len(batch)

    async def _write_alone(self, record: CallRecord, batch: Sequence[CallRecord]) -> None:
        records = [r for r in batch if r.task_id == record.task_id]
        try:
            await self._apply_until_done(records)
        except Exception:
            log.exception("the database refused task %s; its records are dropped", record.task_id)
            self.failed += len(records)
        else:
            self.written += len(records)

    async def _apply_until_done(self, records: Sequence[CallRecord]) -> None:
        """Apply in one transaction, retrying transient errors; other errors propagate."""
        attempt = 0
        while True:
            try:
                async with self._engine.begin() as conn:
                    await apply_batch(conn, records, self._prices)
                return
            except Exception as error:
                if not is_transient(error):
                    raise
                delay = min(self._first_backoff * 2**attempt, self._max_backoff)
                log.warning("database write failed (%s); retrying in %.2fs", error, delay)
                self.retries += 1
                attempt += 1
                await asyncio.sleep(delay)
