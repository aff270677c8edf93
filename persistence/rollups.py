"""Usage rollups: the `usage_hourly` rows, kept equal to the sums over the tasks they cover.

`apply.py` moves them on the same row transitions as the run aggregates, in the same
transaction: a task row inserted (+1 task, +1 request), a task reaching its final status (its
error, tokens, cost and TTFT bucket), a task becoming or ceasing to be a `retried` attempt (∓1
request, ∓ its error). So a replayed batch changes nothing twice and several writers stay
exact; a row's key is frozen when the task is inserted. A purged run's tasks are taken out
again (`subtract_run`), and migration 0007 builds the rows of tasks stored before it
(`backfill`).

Upserts add to rows in (hour, digest) order, after the runs are locked in id order: one lock
order for every writer. Writers that add to the same rollup row (same hour and key) queue on it
until the first commits, as writers of one run queue on the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from hashlib import blake2b
from typing import Any

from sqlalchemy import ColumnElement, Select, String, delete, func, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.attempts import AttemptRow
from persistence.models import TTFT_COLUMNS, USAGE_COUNTERS
from persistence.models import tasks_table as tasks
from persistence.models import usage_hourly_table as usage_hourly
from persistence.record import ERROR_STATUSES
from persistence.ttft_histogram import BUCKETS, bucket_of

# (hour, upstream model, provider, user, owner)
RollupKey = tuple[datetime, str | None, str | None, str | None, str | None]
KEY_NAMES = ("model", "provider", "user_id", "owner")
TOKENS = ("prompt_tokens", "completion_tokens", "total_tokens")


def hour_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def key_of(row: dict[str, Any] | AttemptRow) -> RollupKey:
    """The rollup key of a task row (as `apply.py` holds it) or of an attempt read back."""
    if isinstance(row, AttemptRow):
        return hour_of(row.created_at), row.upstream_model, row.provider, row.user_id, row.owner
    return (hour_of(row["created_at"]), row["upstream_model"], row["provider"], row["user_id"],
            row["owner"])  # fmt: skip


def key_digest(key: RollupKey) -> bytes:
    """16 bytes that tell keys apart: each value length-prefixed, None distinct from ''."""
    digest = blake2b(digest_size=16)
    for value in key[1:]:
        if value is None:
            digest.update(b"\x00")
        else:
            data = value.encode("utf-8", "surrogatepass")
            digest.update(b"\x01" + len(data).to_bytes(8, "big") + data)
    return digest.digest()


@dataclass(slots=True)
class RollupDelta:
    """What some tasks add to one rollup row (or, in a report, to one group)."""

    tasks: int = 0
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: Decimal = Decimal(0)
    priced: int = 0
    ttft: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    def add_inserted(self) -> None:
        """A task row was inserted: it starts out as its call's last attempt."""
        self.tasks += 1
        self.requests += 1

    def add_final(self, row: dict[str, Any]) -> None:
        """A task reached its final status; `row["retried"]` is its flag at that moment."""
        self.errors += row["status"] in ERROR_STATUSES and not row["retried"]
        for name in TOKENS:
            setattr(self, name, getattr(self, name) + (row[name] or 0))
        if row["cost"] is not None:
            self.cost += row["cost"]
            self.priced += 1
        if row["time_to_first_token_ms"] is not None:
            self.add_ttft(row["time_to_first_token_ms"])

    def add_ttft(self, ms: float) -> None:
        bucket = bucket_of(ms)
        if bucket is not None:
            self.ttft[bucket] += 1

    def add_retried_change(self, row: AttemptRow, retried: bool) -> None:
        sign = -1 if retried else 1
        self.requests += sign
        self.errors += sign * row.is_error

    def add_sums(self, sums: Any) -> None:
        """Add a row of `task_sums`, or of summed `usage_hourly` counters (with histogram)."""
        fields = sums._mapping
        for name in ("tasks", "requests", "errors", *TOKENS, "priced"):
            setattr(self, name, getattr(self, name) + int(fields[name] or 0))
        self.cost += fields["cost"] or 0
        if TTFT_COLUMNS[0] in fields:
            for bucket, name in enumerate(TTFT_COLUMNS):
                self.ttft[bucket] += int(fields[name] or 0)

    def negated(self) -> RollupDelta:
        return RollupDelta(
            -self.tasks, -self.requests, -self.errors, -self.prompt_tokens,
            -self.completion_tokens, -self.total_tokens, -self.cost, -self.priced,
            [-count for count in self.ttft],
        )  # fmt: skip

    def counters(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in USAGE_COUNTERS if name in _SCALARS}
        return values | dict(zip(TTFT_COLUMNS, self.ttft, strict=True))


_SCALARS = frozenset(RollupDelta.__slots__) - {"ttft"}


def rollup_deltas(
    inserted: Iterable[dict[str, Any]],
    finalized: Iterable[dict[str, Any]],
    changes: Iterable[tuple[AttemptRow, bool]],
) -> dict[RollupKey, RollupDelta]:
    """What one batch's row transitions add to the rollups (see the module docstring)."""
    deltas: dict[RollupKey, RollupDelta] = {}

    def at(key: RollupKey) -> RollupDelta:
        return deltas.setdefault(key, RollupDelta())

    for row in inserted:
        at(key_of(row)).add_inserted()
    for row in finalized:
        at(key_of(row)).add_final(row)
    for attempt, retried in changes:
        at(key_of(attempt)).add_retried_change(attempt, retried)
    return deltas


async def add_to_rollups(conn: AsyncConnection, deltas: dict[RollupKey, RollupDelta]) -> None:
    if deltas:
        await conn.execute(_upsert(conn.dialect.name), _upsert_params(deltas))


def _upsert_params(deltas: dict[RollupKey, RollupDelta]) -> list[dict[str, Any]]:
    params = []
    for key, delta in deltas.items():
        identity = {"hour": key[0], "key_digest": key_digest(key)}
        params.append(identity | dict(zip(KEY_NAMES, key[1:], strict=True)) | delta.counters())
    return sorted(params, key=lambda p: (p["hour"], p["key_digest"]))  # one lock order


def _upsert(dialect_name: str) -> Any:
    statement = _UPSERTS.get(dialect_name)
    if statement is None:
        dialect = postgresql if dialect_name == "postgresql" else sqlite
        insert = dialect.insert(usage_hourly)
        added = {name: usage_hourly.c[name] + insert.excluded[name] for name in USAGE_COUNTERS}
        statement = insert.on_conflict_do_update(index_elements=["hour", "key_digest"], set_=added)
        _UPSERTS[dialect_name] = statement
    return statement


_UPSERTS: dict[str, Any] = {}


# ----- sums over task rows: the backfill, a purge, and the partial hours of a report -----


def task_sums(
    group: Sequence[Callable[[Any], ColumnElement[Any]]], *where: ColumnElement[bool]
) -> Select[Any]:
    """Sums over the tasks that match `where`, per `group` (functions of the task columns):
    the group's values, then the counters, as `RollupDelta.add_sums` reads them. The TTFTs are
    read apart (`task_ttfts`): a GROUP BY per bucket made Postgres sort and spill every row."""
    t = tasks.c
    last = t.retried.is_(False)
    columns = [
        func.count().label("tasks"),
        func.count().filter(last).label("requests"),
        func.count().filter(last, t.status.in_(ERROR_STATUSES)).label("errors"),
        *(func.sum(t[name]).label(name) for name in TOKENS),
        func.sum(t.cost).label("cost"),
        func.count(t.cost).label("priced"),
    ]
    grouping = [expression(t) for expression in group]
    return select(*grouping, *columns).where(*where).group_by(*grouping)


def task_ttfts(
    group: Sequence[Callable[[Any], ColumnElement[Any]]], *where: ColumnElement[bool]
) -> Select[Any]:
    """The group's values and the TTFT of each task that matches `where` and has one."""
    t = tasks.c
    grouping = [expression(t) for expression in group]
    ttft = t.time_to_first_token_ms
    return select(*grouping, ttft).where(*where, ttft.is_not(None))


def hour_sql(dialect_name: str) -> Callable[[Any], ColumnElement[Any]]:
    """The UTC hour of `created_at` as SQL, read back by `_hour_value`."""
    if dialect_name == "postgresql":
        return lambda t: func.date_trunc("hour", func.timezone("UTC", t.created_at)).label("hour")
    return lambda t: func.substr(t.created_at, 1, 13, type_=String).label("hour")


def _hour_value(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite: "YYYY-MM-DD HH" of the stored UTC text
        return datetime.strptime(value, "%Y-%m-%d %H").replace(tzinfo=UTC)
    return value.replace(tzinfo=UTC)


_KEY_COLUMNS = (
    lambda t: t.upstream_model, lambda t: t.provider, lambda t: t.user_id, lambda t: t.owner
)  # fmt: skip


def _by_key(dialect_name: str, *where: ColumnElement[bool]) -> tuple[Select[Any], Select[Any]]:
    group = [hour_sql(dialect_name), *_KEY_COLUMNS]
    return task_sums(group, *where), task_ttfts(group, *where)


def _deltas(sums: Sequence[Any], ttfts: Sequence[Any]) -> dict[RollupKey, RollupDelta]:
    deltas: dict[RollupKey, RollupDelta] = {}
    for row in sums:
        key = (_hour_value(row[0]), *row[1:5])
        deltas.setdefault(key, RollupDelta()).add_sums(row)  # type: ignore[arg-type]
    for row in ttfts:
        key = (_hour_value(row[0]), *row[1:5])
        deltas[key].add_ttft(row[5])  # type: ignore[index]
    return deltas


def backfill(connection: Connection) -> None:
    """Build `usage_hourly` from every stored task (migration 0007; an empty table first)."""
    sums, ttfts = _by_key(connection.dialect.name)
    deltas = _deltas(connection.execute(sums).all(), connection.execute(ttfts).all())
    params = _upsert_params(deltas)
    for start in range(0, len(params), 1000):
        connection.execute(_upsert(connection.dialect.name), params[start : start + 1000])


async def subtract_run(conn: AsyncConnection, run_id: str) -> None:
    """Take a run's tasks out of the rollups, before they are deleted with it. The caller holds
    the run's row lock, so no writer adds to the run meanwhile."""
    sums, ttfts = _by_key(conn.dialect.name, tasks.c.run_id == run_id)
    found = _deltas((await conn.execute(sums)).all(), (await conn.execute(ttfts)).all())
    deltas = {key: delta.negated() for key, delta in found.items()}
    if not deltas:
        return
    await add_to_rollups(conn, deltas)
    emptied = [(key[0], key_digest(key)) for key in deltas]
    await conn.execute(
        delete(usage_hourly).where(
            tuple_(usage_hourly.c.hour, usage_hourly.c.key_digest).in_(emptied),
            usage_hourly.c.tasks <= 0,
        )
    )
