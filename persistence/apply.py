"""Write one batch of call records in the caller's transaction, idempotently.

Every aggregate change is tied to a row transition the database itself decides (a task row
inserted; a task row leaving pending/streaming; a task row becoming, or ceasing to be, a
`retried` attempt of its call), and aggregates move by SQL increments, never a
read-modify-write in Python. So applying a batch twice, or again after a lost commit, changes
nothing twice, and several writers sharing one Postgres stay exact.

Aggregates (see `persistence/attempts.py` for attempts): `task_count` and `error_count` are
sums over the run's tasks that are not `retried` (one per logical call, its last attempt), the
tokens, `total_cost`, `unpriced_task_count` and `last_message_at` are over every task. The
usage rollups move on the same transitions (`persistence/rollups.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, case, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Insert

from persistence.attempts import AttemptRow, retried_changes
from persistence.conversation import build_conversation, conversation_input
from persistence.models import runs_table as runs
from persistence.models import tasks_table as tasks
from persistence.record import (
    COMPLETED,
    ERROR_STATUSES,
    FINAL_STATUSES,
    OPEN_STATUSES,
    PENDING,
    STREAMING,
    CallRecord,
    is_unpriced,
)
from persistence.rollups import add_to_rollups, rollup_deltas
from persistence.rows import coalesce, run_row, task_row
from persistence.storable import storable_record
from persistence.types import JSONType, Money, UTCDateTime
from pricing.table import PriceTable

# Set once, when the row is inserted: its identity, which attempt of which call it is (so
# `_settle_attempts`, which runs on inserts, sees every change) and what it is counted under
# (its run, and its usage-rollup key), so a final record cannot move what its start counted.
# `retried` is not the record's to set at all: only `_settle_attempts` moves it.
_KEPT = ("created_at", "run_id", "upstream_model", "provider", "user_id", "owner")
_INSERTED_ONLY = ("id", *_KEPT, "attempt", "attempt_of", "retried")
_FINAL_COLUMNS = [c.name for c in tasks.columns if c.name not in _INSERTED_ONLY]
_ATTEMPT_COLUMNS = [tasks.c[name] for name in AttemptRow.__slots__]


@dataclass(slots=True)
class RunDelta:
    """What one batch adds to one run."""

    task_count: int = 0
    error_count: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    total_cost: Decimal = Decimal(0)
    unpriced_task_count: int = 0
    last_message_at: datetime | None = None

    def add_final(self, row: dict[str, Any]) -> None:
        """A task reached its final status; `row["retried"]` is its flag at that moment."""
        self.error_count += row["status"] in ERROR_STATUSES and not row["retried"]
        self.prompt_tokens += row["prompt_tokens"] or 0
        self.completion_tokens += row["completion_tokens"] or 0
        self.total_tokens += row["total_tokens"] or 0
        if row["cost"] is not None:
            self.total_cost += row["cost"]
        self.unpriced_task_count += is_unpriced(row["status"], row["cost"], row["total_tokens"])
        at = row["completed_at"] or row["created_at"]
        self.last_message_at = max(at, self.last_message_at or at)

    def add_retried_change(self, row: AttemptRow, retried: bool) -> None:
        """A task became (or ceased to be) a retried attempt: its call is counted by another."""
        sign = -1 if retried else 1
        self.task_count += sign
        self.error_count += sign * row.is_error


async def apply_batch(
    conn: AsyncConnection, records: Sequence[CallRecord], prices: PriceTable
) -> None:
    records = [storable_record(record) for record in coalesce(records)]
    if not records:
        return
    await _create_runs(conn, records)
    await _lock_runs(conn, records)
    await _merge_run_metadata(conn, records)
    rows = [task_row(record, prices) for record in records]
    inserted = await _insert_tasks(conn, rows)
    new = [r for r in rows if r["id"] in inserted]
    known = [r for r in rows if r["id"] not in inserted]
    finalized = [r for r in new if r["status"] in FINAL_STATUSES]
    finalized += await _finalize_tasks(conn, known)
    await _mark_streaming(conn, known)
    changes = await _settle_attempts(conn, new)
    await _add_to_runs(conn, new, finalized, changes)
    await add_to_rollups(conn, rollup_deltas(new, finalized, changes))
    await _set_run_messages(conn, finalized)


def _insert(conn: AsyncConnection, table: Any) -> Insert:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


async def _create_runs(conn: AsyncConnection, records: list[CallRecord]) -> None:
    """Runs are created by their earliest-started record; an existing run is left alone."""
    first: dict[str, CallRecord] = {}
    for record in sorted(records, key=lambda r: r.started_at):
        if record.run is not None:
            first.setdefault(record.run.id, record)
    if first:
        rows = [run_row(first[run_id]) for run_id in sorted(first)]  # one lock order for all
        await conn.execute(_insert(conn, runs).on_conflict_do_nothing(index_elements=["id"]), rows)


async def _lock_runs(conn: AsyncConnection, records: list[CallRecord]) -> None:
    """Postgres: lock the batch's runs in id order up front, so concurrent writers queue
    instead of deadlocking. (SQLite: the transaction already holds the database's write lock.)"""
    run_ids = sorted({r.run.id for r in records if r.run is not None})
    if run_ids and conn.dialect.name == "postgresql":
        locking = select(runs.c.id).where(runs.c.id.in_(run_ids)).order_by(runs.c.id)
        await conn.execute(locking.with_for_update(key_share=True))


async def _merge_run_metadata(conn: AsyncConnection, records: list[CallRecord]) -> None:
    """X-Run-Metadata is merged into the run's metadata on every call that sends it, key by
    top-level key (a sent key replaces the stored one, null included), on both databases."""
    patches = [(r.run.id, r.run.metadata) for r in records if r.run is not None and r.run.metadata]
    if not patches:
        return
    if conn.dialect.name == "postgresql":
        patch = bindparam("patch", type_=JSONType)
        merged = runs.c.metadata.op("||", return_type=JSONType)(patch)
        statement = update(runs).where(runs.c.id == bindparam("run")).values(metadata=merged)
        await conn.execute(statement, [{"run": run, "patch": patch} for run, patch in patches])
        return
    # SQLite: merged here, under the write lock this transaction already holds (the run insert
    # took it), so no other writer can interleave; JSON paths could not name every key.
    stored = select(runs.c.id, runs.c.metadata).where(runs.c.id.in_({run for run, _ in patches}))
    merged = {run: dict(metadata or {}) for run, metadata in await conn.execute(stored)}
    for run_id, patch in patches:
        merged.setdefault(run_id, {}).update(patch)
    statement = (
        update(runs)
        .where(runs.c.id == bindparam("run"))
        .values(metadata=bindparam("merged", type_=JSONType))
    )
    await conn.execute(statement, [{"run": run, "merged": merged[run]} for run in sorted(merged)])


async def _insert_tasks(conn: AsyncConnection, rows: list[dict[str, Any]]) -> set[str]:
    """Ids of the tasks this batch inserted (not those already there)."""
    statement = (
        _insert(conn, tasks).on_conflict_do_nothing(index_elements=["id"]).returning(tasks.c.id)
    )
    result = await conn.execute(statement, rows)
    return set(result.scalars())


async def _finalize_tasks(
    conn: AsyncConnection, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Move existing open tasks to their final state; returns the rows that made the move.
    The open ones are selected under a row lock, so no other writer can finalize them too
    (SQLite: the task insert before this already took the database's write lock)."""
    finals = {r["id"]: r for r in rows if r["status"] in FINAL_STATUSES}
    if not finals:
        return []
    kept = [tasks.c[name] for name in ("retried", *_KEPT)]
    still_open = (
        select(tasks.c.id, *kept)
        .where(tasks.c.id.in_(list(finals)), tasks.c.status.in_(OPEN_STATUSES))
        .with_for_update()
    )
    opened = await conn.execute(still_open)
    moving = [finals[row.id] | row._asdict() for row in opened]
    if moving:
        # Spelled out: an IN list would be an "expanding" parameter, which executemany refuses.
        still_open_row = or_(*(tasks.c.status == status for status in OPEN_STATUSES))
        statement = update(tasks).where(tasks.c.id == bindparam("task_id"), still_open_row)
        params = [{"task_id": r["id"]} | {c: r[c] for c in _FINAL_COLUMNS} for r in moving]
        await conn.execute(statement, params)
    return moving


async def _mark_streaming(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    params = [
        {"task_id": r["id"], "http_status": r["http_status"], "latency": r["upstream_latency_ms"]}
        for r in rows
        if r["status"] == STREAMING
    ]
    if params:
        statement = (
            update(tasks)
            .where(tasks.c.id == bindparam("task_id"), tasks.c.status == PENDING)
            .values(
                status=STREAMING,
                http_status=bindparam("http_status"),
                upstream_latency_ms=bindparam("latency"),
            )
        )
        await conn.execute(statement, params)


async def _settle_attempts(
    conn: AsyncConnection, inserted: list[dict[str, Any]]
) -> list[tuple[AttemptRow, bool]]:
    """Only a new row can change which attempt of a call is the last, so the calls of this
    batch's new rows are asked (one probe of the retries-only index) whether they have more
    than one attempt; those that do have their rows read under a lock and their `retried`
    flags set. Returns the flags that changed.

    Two writers must not settle one call at once, each blind to the other's new row. A call
    in a run is theirs in turn: every writer of a run takes its lock first (Postgres; SQLite's
    transaction holds the database's write lock). A call outside any run takes a transaction
    lock of its own, after the run locks and in key order, so whichever writer comes second
    reads the first one's rows. A call is its run's alone: rows of other runs are not read."""
    keys = {(r["run_id"], r["attempt_of"] or r["id"]) for r in inserted}
    if not keys:
        return []
    await _lock_calls_outside_runs(conn, sorted(call for run, call in keys if run is None))
    calls = {call for _, call in keys}
    retried_calls = select(tasks.c.attempt_of).where(tasks.c.attempt_of.in_(calls)).distinct()
    found = list((await conn.execute(retried_calls)).scalars())
    if not found:
        return []
    runs_of_calls = {run for run, _ in keys}
    in_those_runs = [tasks.c.run_id.in_([run for run in runs_of_calls if run is not None])]
    if None in runs_of_calls:
        in_those_runs.append(tasks.c.run_id.is_(None))
    attempts = (
        select(*_ATTEMPT_COLUMNS)
        .where(or_(tasks.c.id.in_(found), tasks.c.attempt_of.in_(found)), or_(*in_those_runs))
        .order_by(tasks.c.id)
        .with_for_update()
    )
    rows = [AttemptRow(*row) for row in await conn.execute(attempts)]
    rows = [row for row in rows if row.call in keys]
    changes = retried_changes(rows)
    if changes:
        statement = (
            update(tasks)
            .where(tasks.c.id == bindparam("task_id"))
            .values(retried=bindparam("flag"))
        )
        await conn.execute(statement, [{"task_id": r.id, "flag": flag} for r, flag in changes])
    return changes


_LOCK_CALLS = text(
    "SELECT count(pg_advisory_xact_lock(hashtextextended(call, 0)))"
    " FROM (SELECT unnest(CAST(:calls AS text[])) AS call ORDER BY 1) AS in_key_order"
)


async def _lock_calls_outside_runs(conn: AsyncConnection, calls: list[str]) -> None:
    """Postgres: one statement per batch, held to the end of the transaction."""
    if calls and conn.dialect.name == "postgresql":
        await conn.execute(_LOCK_CALLS, {"calls": calls})


async def _add_to_runs(
    conn: AsyncConnection,
    inserted: list[dict[str, Any]],
    finalized: list[dict[str, Any]],
    changes: list[tuple[AttemptRow, bool]],
) -> None:
    deltas: dict[str, RunDelta] = {}
    for row in inserted:
        if row["run_id"] is not None:
            deltas.setdefault(row["run_id"], RunDelta()).task_count += 1
    for row in finalized:
        if row["run_id"] is not None:
            deltas.setdefault(row["run_id"], RunDelta()).add_final(row)
    for attempt, retried in changes:
        if attempt.run_id is not None:
            deltas.setdefault(attempt.run_id, RunDelta()).add_retried_change(attempt, retried)
    if deltas:
        now = datetime.now(UTC)
        params = [_delta_params(run_id, deltas[run_id], now) for run_id in sorted(deltas)]
        await conn.execute(_INCREMENT_RUN, params)


def _increment(column: Any) -> Any:
    return column + bindparam(f"d_{column.name}", type_=column.type)


_LAST = bindparam("d_last_message_at", type_=UTCDateTime())
_INCREMENT_RUN = (
    update(runs)
    .where(runs.c.id == bindparam("d_run"))
    .values(
        task_count=_increment(runs.c.task_count),
        error_count=_increment(runs.c.error_count),
        prompt_tokens=_increment(runs.c.prompt_tokens),
        completion_tokens=_increment(runs.c.completion_tokens),
        total_tokens=_increment(runs.c.total_tokens),
        total_cost=runs.c.total_cost + bindparam("d_total_cost", type_=Money()),
        unpriced_task_count=_increment(runs.c.unpriced_task_count),
        # A NULL bound value compares as unknown: the CASE keeps the current value.
        last_message_at=case((runs.c.last_message_at < _LAST, _LAST), else_=runs.c.last_message_at),
        updated_at=bindparam("d_updated_at", type_=UTCDateTime()),
    )
)


def _delta_params(run_id: str, delta: RunDelta, now: datetime) -> dict[str, Any]:
    params = {f"d_{name}": getattr(delta, name) for name in RunDelta.__slots__}
    return params | {"d_run": run_id, "d_updated_at": now}


async def _set_run_messages(conn: AsyncConnection, finalized: list[dict[str, Any]]) -> None:
    """A run shows the conversation of its most recently *started* completed chat or Responses
    task, whichever endpoint it used; an older task that finishes later does not overwrite it
    (`messages_started_at` guards)."""
    latest: dict[str, dict[str, Any]] = {}
    for row in finalized:
        if _is_conversation(row):
            current = latest.get(row["run_id"])
            if current is None or current["created_at"] < row["created_at"]:
                latest[row["run_id"]] = row
    if latest:
        params = [_messages_params(latest[run_id]) for run_id in sorted(latest)]
        await conn.execute(_SET_MESSAGES, params)


def _is_conversation(row: dict[str, Any]) -> bool:
    return (
        row["run_id"] is not None
        and row["status"] == COMPLETED
        and conversation_input(row["endpoint"], row["request"]) is not None
    )


def _messages_params(row: dict[str, Any]) -> dict[str, Any]:
    conversation = build_conversation(
        row["request"], row["response_text"], row["tool_calls"], endpoint=row["endpoint"]
    )
    return {
        "m_run": row["run_id"],
        "m_messages": conversation,
        "m_count": len(conversation),
        "m_started_at": row["created_at"],
    }


_STARTED = bindparam("m_started_at", type_=UTCDateTime())
_SET_MESSAGES = (
    update(runs)
    .where(
        runs.c.id == bindparam("m_run"),
        or_(runs.c.messages_started_at.is_(None), runs.c.messages_started_at < _STARTED),
    )
    .values(
        messages=bindparam("m_messages", type_=JSONType),
        message_count=bindparam("m_count"),
        messages_started_at=_STARTED,
    )
)
