"""The production `Recorder`: records go to the database in batches, off the request path, and
to an on-disk spool when the database cannot take them.

- `submit()` never waits, never does I/O and never raises: it appends to memory and returns.
  It must be called from the event loop the writer runs on.
- The write loop takes up to `batch_size` records (the spool's unread ones first, then
  memory's) once that many wait or `flush_interval` after the first arrived, and applies them
  in one transaction (`apply_batch`, idempotent: a batch applied twice — after a lost commit
  acknowledgement, or replayed from a spool after a crash — counts nothing twice). Transient
  errors are retried with capped exponential backoff, the batch staying at the head of the
  line. A batch failing otherwise (a permanent error: the database will never take it as it is)
  is split until the refused records stand alone; each is appended to the dead-letter file
  beside the spool (`persistence.deadletter`), its task is closed as `error`, and it is counted
  in `rejected`. Nothing refused is retried, from memory or from a spool.
- Overflow policy — nothing final is dropped: memory holds at most `queue_size` records, and,
  while the database fails or a write hangs (10 s), none for longer than `spool_after`
  seconds (a database merely behind under load is left to catch up); beyond either, the
  oldest records (with the batch being written, when it is that old) are appended to this
  process's spool and fsync'd, one write and one fsync per spill. The spool is read back in
  order once the database answers. Guarantee: while the database is failing, a record
  submitted `spool_after` seconds ago is in the database or on disk (plus the time of one
  fsync); while it is healthy, at most `queue_size` records wait in memory. Only if the spool
  itself cannot be written (disk full, no permission) does memory fall back to dropping,
  oldest start records first, counted in `dropped`.
- Liveness: the process upserts its `instances` row every `heartbeat_interval` (its first
  write waits for that row, so no one takes its tasks for orphans), and holds its spool's lock.
  Every interval, and first once the database answers, `Recovery` replays dead processes'
  spools and closes tasks they left open. Start-up never waits for the database.
- `stop()` writes everything to the database, giving up after `stop_timeout` seconds or once
  the database has refused writes for `give_up_after` seconds; then what is left goes to the
  spool, which the next process to start replays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.apply import apply_batch
from persistence.backlog import Backlog
from persistence.deadletter import append_dead_letter
from persistence.failures import describe_refusal, is_transient
from persistence.instances import beat, forget, new_instance_id
from persistence.models import tasks_table
from persistence.recovery import Recovery
from persistence.rows import closing_record, coalesce
from persistence.spool import Spool
from pricing.table import PriceTable
from proxy.recording import CallRecord
from proxy.settings import RecordingSettings

log = logging.getLogger(__name__)
_HUNG_WRITE_SECONDS = 10.0

# Rows per INSERT statement. Batches vary in size, and every distinct row count is a distinct
# statement that asyncpg prepares and caches per connection (~0.3 MB for a few hundred rows):
# pages of at most this many rows bound that cache to a few small statements.
_INSERT_PAGE = 64
# A batch read back from the spool (the writer is behind) takes this many times `batch_size`:
# a call's start and final records, far apart in the spool, then land in one write.
_SPOOL_BATCH_FACTOR = 8


class BatchWriter:
    """Records calls in the database off the request path; see the module docstring."""

    def __init__(
        self,
        engine: AsyncEngine,
        prices: PriceTable,
        settings: RecordingSettings | None = None,
        *,
        instance_id: str | None = None,
        first_backoff: float = 0.05,
        max_backoff: float = 5.0,
        lookup_timeout: float = 0.5,
        stop_timeout: float = 10.0,
        give_up_after: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine.execution_options(insertmanyvalues_page_size=_INSERT_PAGE)
        self._prices = prices
        self._settings = settings = settings or RecordingSettings()
        self.instance_id = instance_id or new_instance_id()
        self._first_backoff, self._max_backoff = first_backoff, max_backoff
        self._lookup_timeout = lookup_timeout
        self._stop_timeout, self._give_up_after = stop_timeout, give_up_after
        self._clock = clock
        self._heartbeat = max(0.01, settings.heartbeat_interval)
        self._backlog = Backlog(settings.queue_size)
        self._spool_broken = False
        self._recovery = Recovery(
            self._engine, prices, self.instance_id, settings.spool_dir, settings.batch_size
        )
        self._active: set[str] = set()  # tasks whose final record is in memory or in flight
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._spill_now = asyncio.Event()
        self._registered = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._started_at = datetime.now(UTC)
        self._failing_since: float | None = None
        self._writing_since: float | None = None  # when the batch being written began
        self._stopping = False
        self._closed = False
        self.written = 0  # records committed
        self.spooled = 0  # records appended to the spool (some are then written, too)
        self.dropped = 0  # records lost: the spool was unusable, or submitted after stop
        self.rejected = 0  # records the database refused for good (in the dead-letter file)
        self.retries = 0  # transient database errors retried (writes and heartbeats)

    @property
    def backlog(self) -> int:
        """Records submitted but not yet written (in memory or in the spool)."""
        return len(self._backlog)

    def status(self) -> dict[str, int]:
        """For `/readyz`."""
        return {
            "backlog": len(self._backlog),
            "spooled": self._backlog.spooled,
            "dropped": self.dropped,
            "rejected": self.rejected,
        }

    def submit(self, record: CallRecord) -> None:
        try:
            self._enqueue(record)
        except Exception:  # recording must never break proxying
            log.exception("dropping a call record")
            self.dropped += 1

    def is_task_active(self, task_id: str) -> bool:
        """Whether the task is in flight in this process (its final record is in memory)."""
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
        """Open the spool and start the background loops; never waits for the database."""
        if self._loops:
            return
        self._open_spool()
        loops = (self._write_loop, self._spool_loop, self._heartbeat_loop, self._recovery_loop)
        self._loops = [asyncio.create_task(run(), name=f"airuns{run.__name__}") for run in loops]

    async def stop(self, timeout: float | None = None) -> None:
        """Write everything submitted so far to the database, else to the spool; see the
        module docstring for the bounds."""
        await self.start()  # so records submitted before start are handled too
        self._stopping = True
        self._arrived.set()
        self._full.set()
        drained = await self._drain(self._stop_timeout if timeout is None else timeout)
        for loop in reversed(self._loops):  # the write loop last: it may have finished
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        if not drained:
            await self._spill(0.0, everything=True)
        self._report_loss()
        if drained:
            await self._forget_instance()
        if self._backlog.spool is not None:
            self._backlog.spool.close()
        self._closed = True

    def _open_spool(self) -> None:
        try:
            self._backlog.spool = Spool.create(self._settings.spool_dir, self.instance_id)
        except OSError:
            log.exception(
                "no spool in %s: records beyond recording.queue_size will be dropped",
                self._settings.spool_dir,
            )
            self._spool_broken = True

    def _enqueue(self, record: CallRecord) -> None:
        if self._closed:
            log.error("call record for task %s submitted after stop: dropped", record.task_id)
            self.dropped += 1
            return
        if record.instance_id is None:
            record = replace(record, instance_id=self.instance_id)
        self._backlog.push(record, self._clock())
        self._active.add(record.task_id)
        self._arrived.set()
        waiting = len(self._backlog.memory)
        if waiting >= self._settings.batch_size:
            self._full.set()
        if waiting > self._settings.queue_size:
            if self._spool_broken:
                self._forget([self._backlog.drop_one()])
                self.dropped += 1
            else:
                self._spill_now.set()

    # The write loop.

    async def _write_loop(self) -> None:
        await self._registered.wait()
        while await self._next_batch_ready():
            try:
                size = max(1, self._settings.batch_size)
                batch = self._backlog.take(size, size * _SPOOL_BATCH_FACTOR)
                if batch is not None:
                    await self._write(batch.records)
                    self._backlog.done(batch)
                    self._forget(batch.records)
            except Exception:  # e.g. the spool cannot be read: keep the loop alive
                log.exception("write loop error; retrying")
                await asyncio.sleep(self._max_backoff)

    async def _next_batch_ready(self) -> bool:
        """Wait for records, then for a full batch or `flush_interval`; False once stopped
        and drained."""
        while not self._backlog.has_waiting():
            if self._stopping:
                return False
            self._arrived.clear()
            await self._arrived.wait()
        few = len(self._backlog.memory) < self._settings.batch_size
        if few and not self._backlog.spooled and not self._stopping:
            self._full.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self._settings.flush_interval)
        return True

    def _forget(self, records: Sequence[CallRecord]) -> None:
        for record in records:
            if record.is_final:
                self._active.discard(record.task_id)

    async def _write(self, batch: Sequence[CallRecord]) -> None:
        """Write `batch`; what the database refuses for good is isolated (see `_refuse`), so
        one bad record never holds up the others and is never retried as it is."""
        if not batch:
            return
        self._writing_since = self._clock()
        copies = Counter(record.task_id for record in batch)
        try:
            await self._write_isolating(coalesce(batch), copies)
        finally:
            self._writing_since = None

    async def _write_isolating(self, records: list[CallRecord], copies: Counter[str]) -> None:
        """Apply `records`; on a permanent error, halve the batch until the records that cause
        it stand alone: log2(batch) extra transactions per refused record."""
        try:
            await self._apply_until_done(records)
        except Exception as error:  # transient errors were retried: this one is permanent
            if len(records) == 1:
                await self._refuse(records[0], error, copies[records[0].task_id])
                return
            middle = len(records) // 2
            await self._write_isolating(records[:middle], copies)
            await self._write_isolating(records[middle:], copies)
        else:
            self.written += sum(copies[record.task_id] for record in records)

    async def _refuse(self, record: CallRecord, error: Exception, copies: int) -> None:
        """The database refused this record for good: keep it in the dead-letter file, and
        close its task as `error` with a record that holds nothing but what can be stored, so
        the task never stays `pending`/`streaming`. Never raises: the write loop goes on."""
        self.rejected += copies
        reason = describe_refusal(error)
        try:
            path = await asyncio.to_thread(
                append_dead_letter, self._settings.spool_dir, record, reason, self.instance_id
            )
        except Exception:  # OSError, or a record the file's JSON cannot hold
            log.error("the database refused task %s (%s); it could not be dead-lettered",
                      record.task_id, reason, exc_info=True)  # fmt: skip
        else:
            log.error("the database refused task %s (%s); its record is in %s",
                      record.task_id, reason, path)  # fmt: skip
        if not record.is_final:  # its final record may still be stored, and close the task
            return
        try:
            await self._apply_until_done([closing_record(record, reason)])
        except Exception:
            log.exception("could not close task %s after its record was refused", record.task_id)

    async def _apply_until_done(self, records: Sequence[CallRecord]) -> None:
        """Apply in one transaction, retrying transient errors; other errors propagate."""
        attempt = 0
        while True:
            try:
                async with self._engine.begin() as conn:
                    await apply_batch(conn, records, self._prices)
            except Exception as error:
                if not is_transient(error):
                    raise
                self._database_failed()
                delay = min(self._first_backoff * 2**attempt, self._max_backoff)
                log.warning("database write failed (%s); retrying in %.2fs", error, delay)
                self.retries += 1
                attempt += 1
                await asyncio.sleep(delay)
            else:
                self._failing_since = None
                return

    def _database_failed(self) -> None:
        if self._failing_since is None:
            self._failing_since = self._clock()

    # The spool loop: what waited too long in memory goes to disk.

    async def _spool_loop(self) -> None:
        tick = max(0.005, self._settings.spool_after / 2)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._spill_now.wait(), tick)
            self._spill_now.clear()
            await self._spill(tick if self._database_struggling() else math.inf)

    def _database_struggling(self) -> bool:
        """Spill by age only while the database fails or a write hangs: a database that is
        merely behind under load catches up by itself, and spilling its backlog would spend CPU
        (encode, fsync, read back, decode) exactly when the process is busiest. Spilling by
        count (`queue_size`) happens regardless."""
        if self._failing_since is not None:
            return True
        started = self._writing_since
        return started is not None and self._clock() - started > self._hung_after

    @property
    def _hung_after(self) -> float:
        """A write this long is hung, not slow: under load one batch may wait a second or more
        for the busy event loop, and that alone must not start spilling."""
        return max(_HUNG_WRITE_SECONDS, 10 * self._settings.spool_after)

    async def _spill(self, max_age: float, everything: bool = False) -> None:
        spool = self._backlog.spool
        if spool is None or self._spool_broken:
            return
        try:
            moved = self._backlog.spill(self._clock(), max_age, everything)
            if moved:
                await asyncio.to_thread(spool.sync)
        except OSError:
            log.exception("the spool %s cannot be written; falling back to memory", spool.path)
            self._spool_broken = True
            return
        self.spooled += len(moved)
        self._forget(moved)

    def _report_loss(self) -> None:
        lost = len(self._backlog) - self._backlog.spooled
        if lost:
            log.error("writer stopped with %d records neither written nor spooled", lost)
            self.dropped += lost
        elif self._backlog.spooled:
            log.warning(
                "writer stopped with %d records in %s; the next start replays them",
                self._backlog.spooled,
                self._backlog.spool.path,  # type: ignore[union-attr]
            )

    # Liveness and recovery.

    async def _heartbeat_loop(self) -> None:
        delay = self._first_backoff
        while True:
            try:
                async with asyncio.timeout(max(1.0, self._heartbeat)):
                    async with self._engine.begin() as conn:
                        now = datetime.now(UTC)
                        await beat(conn, self.instance_id, now, self._heartbeat, self._started_at)
            except Exception as error:
                if is_transient(error):
                    self._database_failed()
                    self.retries += 1
                log.warning("heartbeat failed (%s); retrying in %.2fs", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._heartbeat)
                continue
            self._registered.set()
            self._failing_since = None
            delay = self._first_backoff
            await asyncio.sleep(self._heartbeat)

    async def _recovery_loop(self) -> None:
        await self._registered.wait()
        while True:
            try:
                await self._recovery.run(self._backlog.spool, self._write)
            except Exception as error:
                transient = is_transient(error)
                log.warning(
                    "recovery pass failed (%s); retrying later", error, exc_info=not transient
                )
            await asyncio.sleep(self._heartbeat)

    async def _drain(self, timeout: float) -> bool:
        """Wait for the write loop to finish; False when it has not within `timeout` or the
        database has been refusing writes for `give_up_after` seconds."""
        deadline = self._clock() + timeout
        write_loop = self._loops[0]
        while not write_loop.done():
            now = self._clock()
            failing = self._failing_since is not None
            if now >= deadline or (failing and now - self._failing_since >= self._give_up_after):
                return False
            await asyncio.wait({write_loop}, timeout=min(0.05, deadline - now))
        return True

    async def _forget_instance(self) -> None:
        """A clean stop removes the instance's row (best effort: it would expire anyway)."""
        try:
            async with asyncio.timeout(1.0), self._engine.begin() as conn:
                await forget(conn, [self.instance_id], datetime.now(UTC))
        except Exception:
            log.warning("could not remove instance %s", self.instance_id, exc_info=True)
