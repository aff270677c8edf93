"""The production `Recorder`: records go to the database in batches, off the request path, and
to an on-disk spool when the database cannot take them. Its one job is the write; the spill
rule (`spill.py`) and the process's liveness and recovery (`liveness.py`) run beside it.

- `submit()` never waits, never does I/O and never raises: it appends to memory and returns.
  It must be called from the event loop the writer runs on; it stamps each record with this
  process's instance id.
- The write loop takes up to `batch_size` records (the spool's unread ones first, then
  memory's) once that many wait or `flush_interval` after the first arrived, and applies them
  in one transaction (`apply_batch`, idempotent: a batch applied twice — after a lost commit
  acknowledgement, or replayed from a spool after a crash — counts nothing twice). Transient
  errors are retried with capped exponential backoff, the batch staying at the head of the
  line. A batch failing otherwise (a permanent error: the database will never take it as it is)
  is split until the refused records stand alone; each is appended to the dead-letter file
  beside the spool (`deadletter.py`), its task is closed as `error`, and it is counted in
  `rejected`. Nothing refused is retried, from memory or from a spool.
- Overflow policy — nothing final is dropped: see `spill.py` for when records go to the spool,
  which is read back in order once the database answers. Only if the spool itself cannot be
  written (disk full, no permission) does memory fall back to dropping beyond `queue_size`,
  oldest start records first, counted in `dropped`.
- Each final record written, spooled, refused or dropped releases its task id from the
  in-flight registry (`inflight.py`): from then on the duplicate check asks the database.
- `stop()` writes everything to the database, giving up after `stop_timeout` seconds or once
  the database has refused writes for `give_up_after` seconds; then what is left goes to the
  spool, which the next process to start replays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.apply import apply_batch
from persistence.backlog import Backlog
from persistence.deadletter import append_dead_letter
from persistence.failures import describe_refusal, is_transient
from persistence.health import DatabaseHealth
from persistence.inflight import InFlightTasks
from persistence.instances import new_instance_id
from persistence.liveness import Liveness
from persistence.record import CallRecord
from persistence.recovery import Recovery
from persistence.rows import closing_record, coalesce
from persistence.settings import WriterSettings
from persistence.spill import Spiller
from persistence.spool import Spool
from pricing.table import PriceTable

log = logging.getLogger(__name__)

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
        settings: WriterSettings | None = None,
        *,
        instance_id: str | None = None,
        inflight: InFlightTasks | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine.execution_options(insertmanyvalues_page_size=_INSERT_PAGE)
        self._prices = prices
        self._settings = settings = settings or WriterSettings()
        self.instance_id = instance_id or new_instance_id()
        self.inflight = inflight if inflight is not None else InFlightTasks()
        self._clock = clock
        self._backlog = Backlog(settings.queue_size)
        hung_after = max(settings.hung_write_after, 10 * settings.spool_after)
        self._health = DatabaseHealth(clock, hung_after)
        self._spiller = Spiller(
            self._backlog, self._health, settings.spool_after, clock, self._forget
        )
        recovery = Recovery(
            self._engine, prices, self.instance_id, settings.spool_dir, settings.batch_size
        )
        self._liveness = Liveness(
            self._engine,
            self.instance_id,
            settings.heartbeat_interval,
            settings.first_backoff,
            self._health,
            recovery,
        )
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False
        self._closed = False
        self.written = 0  # records committed
        self.dropped = 0  # records lost: the spool was unusable, or submitted after stop
        self.rejected = 0  # records the database refused for good (in the dead-letter file)
        self._write_retries = 0

    @property
    def backlog(self) -> int:
        """Records submitted but not yet written (in memory or in the spool)."""
        return len(self._backlog)

    @property
    def retries(self) -> int:
        """Transient database errors retried, by writes and heartbeats."""
        return self._write_retries + self._liveness.retries

    @property
    def spooled(self) -> int:
        """Records appended to the spool so far (some are then written, too)."""
        return self._spiller.spooled

    def status(self) -> dict[str, int]:
        """For `/readyz` and `/metrics`."""
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

    async def start(self) -> None:
        """Open the spool and start the background loops; never waits for the database."""
        if self._loops:
            return
        self._open_spool()
        loops = {
            "write": self._write_loop(),
            "spill": self._spiller.run(),
            "heartbeat": self._liveness.heartbeat(),
            "recovery": self._liveness.recover(self._backlog.spool, self._write),
        }
        self._loops = [asyncio.create_task(run, name=f"airuns-{n}") for n, run in loops.items()]

    async def stop(self, timeout: float | None = None) -> None:
        """Write everything submitted so far to the database, else to the spool; see the
        module docstring for the bounds."""
        await self.start()  # so records submitted before start are handled too
        self._stopping = True
        self._arrived.set()
        self._full.set()
        drained = await self._drain(self._settings.stop_timeout if timeout is None else timeout)
        for loop in reversed(self._loops):  # the write loop last: it may have finished
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        if not drained:
            await self._spiller.spill(0.0, everything=True)
        self._report_loss()
        if drained:
            await self._liveness.forget()
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
            self._spiller.broken = True

    def _enqueue(self, record: CallRecord) -> None:
        if self._closed:
            log.error("call record for task %s submitted after stop: dropped", record.task_id)
            self._forget([record])
            self.dropped += 1
            return
        self._backlog.push(replace(record, instance_id=self.instance_id), self._clock())
        self._arrived.set()
        waiting = len(self._backlog.memory)
        if waiting >= self._settings.batch_size:
            self._full.set()
        if waiting > self._settings.queue_size:
            if self._spiller.broken:
                self._forget([self._backlog.drop_one()])
                self.dropped += 1
            else:
                self._spiller.wake()

    # The write loop.

    async def _write_loop(self) -> None:
        await self._liveness.registered.wait()
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
                await asyncio.sleep(self._settings.max_backoff)

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
        """These records are stored, spooled or lost: their tasks are no longer in flight."""
        for record in records:
            if record.is_final:
                self.inflight.release(record.task_id)

    async def _write(self, batch: Sequence[CallRecord]) -> None:
        """Write `batch`; what the database refuses for good is isolated (see `_refuse`), so
        one bad record never holds up the others and is never retried as it is."""
        if not batch:
            return
        self._health.writing_since = self._clock()
        copies = Counter(record.task_id for record in batch)
        try:
            await self._write_isolating(coalesce(batch), copies)
        finally:
            self._health.writing_since = None

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
                self._health.failed()
                delay = self._settings.first_backoff * 2**attempt
                delay = min(delay, self._settings.max_backoff)
                log.warning("database write failed (%s); retrying in %.2fs", error, delay)
                self._write_retries += 1
                attempt += 1
                await asyncio.sleep(delay)
            else:
                self._health.answered()
                return

    # Stopping.

    async def _drain(self, timeout: float) -> bool:
        """Wait for the write loop to finish; False when it has not within `timeout` or the
        database has been refusing writes for `give_up_after` seconds."""
        deadline = self._clock() + timeout
        write_loop = self._loops[0]
        while not write_loop.done():
            now = self._clock()
            giving_up = self._health.failing_for() >= self._settings.give_up_after
            if now >= deadline or (self._health.failing_since is not None and giving_up):
                return False
            await asyncio.wait({write_loop}, timeout=min(0.05, deadline - now))
        return True

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
