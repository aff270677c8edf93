"""Tasks: the global list (newest first), a run's tasks (oldest first), and one task."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.models import tasks_table as tasks
from persistence.queries.keyset import Ordering, Page, fetch_page
from persistence.queries.scope import Principal, visible
from persistence.record import CANCELLED, COMPLETED, ERROR, PENDING, STREAMING, TIMEOUT

TASK_STATUSES = (PENDING, STREAMING, COMPLETED, ERROR, CANCELLED, TIMEOUT)
NEWEST_FIRST = Ordering("tasks:newest", tasks.c.created_at, tasks.c.id, descending=True)
OLDEST_FIRST = Ordering("run_tasks:oldest", tasks.c.created_at, tasks.c.id, descending=False)


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """`model` matches the client's, the upstream's or the reported model name;
    `since`/`until` bound `created_at` (since inclusive, until exclusive)."""

    run_id: str | None = None
    status: str | None = None
    model: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def list_tasks(
    conn: AsyncConnection,
    principal: Principal,
    filters: TaskFilter,
    *,
    after: tuple[Any, Any] | None = None,
    limit: int = 20,
) -> Page:
    query = select(tasks).where(visible(tasks, principal), *_conditions(filters))
    return await fetch_page(conn, query, NEWEST_FIRST, after, limit)


async def list_run_tasks(
    conn: AsyncConnection,
    principal: Principal,
    run_id: str,
    *,
    after: tuple[Any, Any] | None = None,
    limit: int = 20,
) -> Page:
    """One page of a run's tasks in the order they started (the caller checks the run)."""
    query = select(tasks).where(tasks.c.run_id == run_id, visible(tasks, principal))
    return await fetch_page(conn, query, OLDEST_FIRST, after, limit)


async def all_run_tasks(conn: AsyncConnection, principal: Principal, run_id: str) -> list[Row[Any]]:
    """Every task of a run, oldest first (exports)."""
    query = select(tasks).where(tasks.c.run_id == run_id, visible(tasks, principal))
    return list((await conn.execute(query.order_by(*OLDEST_FIRST.order_by()))).all())


async def get_task(conn: AsyncConnection, principal: Principal, task_id: str) -> Row[Any] | None:
    query = select(tasks).where(tasks.c.id == task_id, visible(tasks, principal))
    return (await conn.execute(query)).one_or_none()


def _conditions(filters: TaskFilter) -> list[ColumnElement[bool]]:
    conditions = []
    if filters.run_id is not None:
        conditions.append(tasks.c.run_id == filters.run_id)
    if filters.status is not None:
        conditions.append(tasks.c.status == filters.status)
    if filters.model is not None:
        model = filters.model
        conditions.append(
            or_(
                tasks.c.model == model,
                tasks.c.upstream_model == model,
                tasks.c.response_model == model,
            )
        )
    if filters.since is not None:
        conditions.append(tasks.c.created_at >= filters.since)
    if filters.until is not None:
        conditions.append(tasks.c.created_at < filters.until)
    return conditions


async def task_exists(conn: AsyncConnection, task_id: str) -> bool:
    """Whether a task with this id is stored, whoever owns it: task ids are global."""
    query = select(tasks.c.id).where(tasks.c.id == task_id)
    return (await conn.execute(query)).first() is not None
