"""Runs: list (filters, sorts, keyset pages), detail, and the admin's changes to a run.

Every statement goes through `scope.visible()`; a run the principal may not see behaves as if
it did not exist (None / False), which the API turns into 404.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.models import runs_table as runs
from persistence.models import tasks_table as tasks
from persistence.queries.keyset import Ordering, Page, fetch_page
from persistence.queries.scope import Principal, visible
from persistence.rollups import subtract_run

RUN_STATUSES = ("active", "archived", "deleted")
STATUS_FILTERS = (*RUN_STATUSES, "all")
EDITABLE_FIELDS = ("name", "description", "is_starred", "status", "tags", "metadata")

# sort name → (column, largest/latest first)
_SORTS = {
    "recent": (runs.c.last_message_at, True),
    "oldest": (runs.c.last_message_at, False),
    "name": (runs.c.name, False),
    "cost": (runs.c.total_cost, True),
    "tokens": (runs.c.total_tokens, True),
    "messages": (runs.c.message_count, True),
}
SORTS = tuple(_SORTS)
ORDERINGS = {
    name: Ordering(f"runs:{name}", column, runs.c.id, descending)
    for name, (column, descending) in _SORTS.items()
}

# Lists leave out the stored conversation: it can be large, and only detail views show it.
_LIST_COLUMNS = [c for c in runs.c if c.name not in ("messages", "messages_started_at")]


@dataclass(frozen=True, slots=True)
class RunFilter:
    """`since`/`until` bound `last_message_at` (since inclusive, until exclusive)."""

    status: str = "active"
    starred: bool | None = None
    q: str | None = None
    source_type: str | None = None
    user_id: str | None = None
    model: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def list_runs(
    conn: AsyncConnection,
    principal: Principal,
    filters: RunFilter,
    *,
    sort: str = "recent",
    after: tuple[Any, Any] | None = None,
    limit: int = 20,
) -> Page:
    query = select(*_LIST_COLUMNS).where(visible(runs, principal), *_conditions(filters, principal))
    return await fetch_page(conn, query, ORDERINGS[sort], after, limit)


def _conditions(filters: RunFilter, principal: Principal) -> list[ColumnElement[bool]]:
    conditions = []
    if filters.status != "all":
        conditions.append(runs.c.status == filters.status)
    if filters.starred is not None:
        conditions.append(runs.c.is_starred.is_(filters.starred))
    if filters.q:
        conditions.append(runs.c.name.ilike(f"%{_escape_like(filters.q)}%", escape="\\"))
    if filters.source_type is not None:
        conditions.append(runs.c.source_type == filters.source_type)
    if filters.user_id is not None:
        conditions.append(runs.c.user_id == filters.user_id)
    if filters.model is not None:
        conditions.append(_has_task_with_model(filters.model, principal))
    if filters.since is not None:
        conditions.append(runs.c.last_message_at >= filters.since)
    if filters.until is not None:
        conditions.append(runs.c.last_message_at < filters.until)
    return conditions


def _has_task_with_model(model: str, principal: Principal) -> ColumnElement[bool]:
    names = or_(
        tasks.c.model == model, tasks.c.upstream_model == model, tasks.c.response_model == model
    )
    matching = select(tasks.c.id).where(
        tasks.c.run_id == runs.c.id, names, visible(tasks, principal)
    )
    return matching.exists()


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def get_run(conn: AsyncConnection, principal: Principal, run_id: str) -> Row[Any] | None:
    """The run with its `messages`, whatever its status."""
    query = select(runs).where(runs.c.id == run_id, visible(runs, principal))
    return (await conn.execute(query)).one_or_none()


async def run_exists(conn: AsyncConnection, principal: Principal, run_id: str) -> bool:
    query = select(runs.c.id).where(runs.c.id == run_id, visible(runs, principal))
    return (await conn.execute(query)).first() is not None


async def update_run(
    conn: AsyncConnection, principal: Principal, run_id: str, changes: Mapping[str, Any]
) -> Row[Any] | None:
    """Set `changes` (API field names from EDITABLE_FIELDS); the run after, or None."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    if changes:
        values: dict[Any, Any] = {runs.c[name]: value for name, value in changes.items()}
        values[runs.c.updated_at] = datetime.now(UTC)
        statement = update(runs).where(runs.c.id == run_id, visible(runs, principal))
        await conn.execute(statement.values(values))
    return await get_run(conn, principal, run_id)


async def set_run_status(
    conn: AsyncConnection, principal: Principal, run_id: str, status: str
) -> Row[Any] | None:
    """Soft delete (`deleted`), archive or restore (`active`); the run after, or None."""
    if status not in RUN_STATUSES:
        raise ValueError(f"unknown run status {status!r}")
    return await update_run(conn, principal, run_id, {"status": status})


async def purge_run(conn: AsyncConnection, principal: Principal, run_id: str) -> bool:
    """Remove the run and its tasks for good, and take them out of the usage rollups; False
    when there was no such run. The run's row is locked first, against the writers' key-share
    lock (SQLite: the database's write lock), so no task of the run is stored between the
    subtraction and the delete."""
    if not await _lock_run(conn, principal, run_id):
        return False
    await subtract_run(conn, run_id)
    await conn.execute(delete(tasks).where(tasks.c.run_id == run_id))
    await conn.execute(delete(runs).where(runs.c.id == run_id, visible(runs, principal)))
    return True


async def _lock_run(conn: AsyncConnection, principal: Principal, run_id: str) -> bool:
    mine = [runs.c.id == run_id, visible(runs, principal)]
    if conn.dialect.name == "postgresql":
        locked = await conn.execute(select(runs.c.id).where(*mine).with_for_update())
        return locked.first() is not None
    touched = await conn.execute(update(runs).where(*mine).values(updated_at=runs.c.updated_at))
    return touched.rowcount > 0
