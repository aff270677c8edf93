"""The records waiting for the database, oldest first: the spool's unread ones, then memory's.

Order is kept by construction: records only ever move from the head of memory to the tail of
the spool, and the writer takes a batch from memory only when the spool has nothing unread.
A batch taken from memory that is still being written when a spill happens is copied to the
spool first (it is older than anything left in memory); once it is written, its copy is
skipped instead of written again.

Synchronous and loop-bound: no awaits, so each method is atomic for the writer's tasks.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from itertools import islice

from persistence.record import CallRecord
from persistence.spool import Spool


@dataclass(slots=True)
class Batch:
    records: list[CallRecord]
    from_spool: bool
    end: int = 0  # offset after its lines in the spool (0: a memory batch not copied there)
    lines: int = 0  # spool lines it spans (corrupt ones included)
    oldest: float = 0.0  # a memory batch: when its first record arrived


class Backlog:
    def __init__(self, queue_size: int) -> None:
        self.queue_size = queue_size
        self.spool: Spool | None = None
        self.memory: deque[tuple[float, CallRecord]] = deque()
        self.in_flight: Batch | None = None
        self._starts = 0  # non-final records in memory (dropped first when the spool fails)

    def __len__(self) -> int:
        """Records not in the database yet, each counted once."""
        count = len(self.memory) + (self.spool.pending if self.spool else 0)
        batch = self.in_flight
        if batch is not None and not batch.from_spool and not batch.end:
            count += len(batch.records)
        return count

    @property
    def spooled(self) -> int:
        return self.spool.pending if self.spool else 0

    def has_waiting(self) -> bool:
        return bool(self.memory) or self.spooled > 0

    def push(self, record: CallRecord, now: float) -> None:
        self.memory.append((now, record))
        self._starts += not record.is_final

    def take(self, limit: int, catch_up_limit: int | None = None) -> Batch | None:
        """The next batch to write, spool first; it stays `in_flight` until `done`. From the
        spool, or from memory holding more than `limit`, up to `catch_up_limit` records: a writer
        that fell behind catches up with fewer, larger transactions (its cost under load is
        round trips through a busy event loop, not rows)."""
        spool_limit = catch_up_limit
        if self.spooled:
            records, end, lines = self.spool.read(spool_limit or limit)  # type: ignore[union-attr]
            if lines:
                self.in_flight = Batch(records, from_spool=True, end=end, lines=lines)
                return self.in_flight
        if not self.memory:
            return None
        oldest = self.memory[0][0]
        waiting = len(self.memory)
        records = self._pop(min(catch_up_limit or limit if waiting > limit else limit, waiting))
        self.in_flight = Batch(records, from_spool=False, oldest=oldest)
        return self.in_flight

    def done(self, batch: Batch) -> None:
        """`batch` is in the database (or refused for good): its spool lines are consumed."""
        if self.spool is not None and batch.end:
            self.spool.consume(batch.end, batch.lines or len(batch.records))
        self.in_flight = None

    def spill(self, now: float, max_age: float, everything: bool = False) -> list[CallRecord]:
        """Append to the spool what has waited longer than `max_age` — all of memory when it
        holds more than `queue_size` or `everything` is set — and return it. Not yet durable:
        the caller syncs. Raises OSError (memory is left as it was) when the spool is unusable."""
        assert self.spool is not None
        count = len(self.memory)
        if not everything and count <= self.queue_size:
            count = self._waited_longer_than(now - max_age)
        moved: list[CallRecord] = []
        batch = self.in_flight
        unspooled = batch is not None and not batch.from_spool and not batch.end
        if unspooled and (count or everything or batch.oldest <= now - max_age):
            batch.end = self.spool.append(batch.records)
            moved += batch.records
        if count:
            records = [record for _, record in islice(self.memory, count)]
            self.spool.append(records)
            self._pop(count)
            moved += records
        return moved

    def drop_one(self) -> CallRecord:
        """Last resort when the spool is unusable: drop the oldest start record (its final
        record still records the task), else the oldest record."""
        if self._starts:
            index = next(i for i, (_, r) in enumerate(self.memory) if not r.is_final)
            _, record = self.memory[index]
            del self.memory[index]
            self._starts -= 1
            return record
        return self._pop(1)[0]

    def _waited_longer_than(self, cutoff: float) -> int:
        count = 0
        for arrived, _ in self.memory:
            if arrived > cutoff:
                break
            count += 1
        return count

    def _pop(self, count: int) -> list[CallRecord]:
        records = [self.memory.popleft()[1] for _ in range(count)]
        self._starts -= sum(not r.is_final for r in records)
        return records
