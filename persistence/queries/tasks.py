"""Tasks: the global list (newest first), a run's tasks (oldest first), and one task with the
attempts of its call."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    String,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.models import tasks_table as tasks
from persistence.queries.keyset import Ordering, Page, fetch_page
from persistence.queries.scope import Principal, visible
from persistence.record import CANCELLED, COMPLETED, ERROR, PENDING, STREAMING, TIMEOUT
from persistence.types import JSONType

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
    """The task, with `attempts`: every attempt of its call (itself included) as
    `{id, attempt, status, http_status, retried}`, in no particular order."""
    attempts = _call_attempts(conn.dialect.name == "postgresql", principal)
    query = select(tasks, attempts).where(tasks.c.id == task_id, visible(tasks, principal))
    return (await conn.execute(query)).one_or_none()


_ATTEMPT_FIELDS = ("id", "attempt", "status", "http_status", "retried")


def _call_attempts(postgres: bool, principal: Principal) -> Any:
    """The attempts of the task's call as a JSON array built by the database, in the same
    query: the first attempt comes from the primary key, the others from the retries-only
    index on `attempt_of`. A call's attempts share its run (`persistence/attempts.py`)."""
    other = tasks.alias("other")
    call = func.coalesce(tasks.c.attempt_of, tasks.c.id)
    same_run = or_(
        other.c.run_id == tasks.c.run_id, and_(other.c.run_id.is_(None), tasks.c.run_id.is_(None))
    )
    fields: list[Any] = []
    for name in _ATTEMPT_FIELDS:
        value = other.c[name]
        if name == "retried" and not postgres:  # SQLite's booleans are 0/1: make them JSON's
            value = func.json(case((value == true(), "true"), else_="false"))
        fields += [literal(name, String), value]
    if postgres:
        array = func.json_agg(func.json_build_object(*fields))
    else:
        array = func.json_group_array(func.json_object(*fields))
    query = select(array).where(
        or_(other.c.id == call, other.c.attempt_of == call), same_run, visible(other, principal)
    )
    return type_coerce(query.scalar_subquery(), JSONType).label("attempts")


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
