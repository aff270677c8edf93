"""Task queries on SQLite and Postgres: filters, both orders, keyset pages, scoping."""

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.models import runs_table, tasks_table
from persistence.queries.bounds import EARLIEST_INSTANT, LATEST_INSTANT
from persistence.queries.scope import Principal
from persistence.queries.tasks import (
    NEWEST_FIRST,
    OLDEST_FIRST,
    TaskFilter,
    all_run_tasks,
    get_task,
    list_run_tasks,
    list_tasks,
    task_exists,
)

ADMIN = Principal.admin()
ANY = TaskFilter()
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def seed(engine: AsyncEngine, tasks: list[dict[str, Any]]) -> None:
    run = {"name": "r", "created_at": T0, "updated_at": T0, "last_message_at": T0}
    async with engine.begin() as conn:
        for run_id in ("r1", "r2"):
            await conn.execute(insert(runs_table).values(run | {"id": run_id}))
        for task in tasks:
            await conn.execute(insert(tasks_table).values(task))


def task(task_id: str, second: int, run_id: str | None = "r1", **fields: Any) -> dict[str, Any]:
    at = T0 + timedelta(seconds=second)
    row = {"id": task_id, "run_id": run_id, "endpoint": "/v1/chat/completions"}
    return row | {"status": "completed", "created_at": at} | fields


TASKS = [
    task("t1", 1, model="fast", upstream_model="gpt-4o-mini", response_model="gpt-4o-mini-2024"),
    task("t2", 2, status="error"),
    task("t3", 2, run_id="r2", model="fast"),
    task("t4", 4, run_id=None, status="streaming", owner="alice"),
    task("t5", 5, owner="alice"),
]


async def task_ids(engine: AsyncEngine, filters: TaskFilter = ANY, **kw: Any) -> list:
    async with engine.connect() as conn:
        page = await list_tasks(conn, kw.pop("principal", ADMIN), filters, **kw)
    return [row.id for row in page.rows]


async def test_tasks_are_listed_newest_first_with_filters(engine: AsyncEngine) -> None:
    await seed(engine, TASKS)
    assert await task_ids(engine) == ["t5", "t4", "t3", "t2", "t1"]
    assert await task_ids(engine, TaskFilter(run_id="r1")) == ["t5", "t2", "t1"]
    assert await task_ids(engine, TaskFilter(status="error")) == ["t2"]
    for model in ("fast", "gpt-4o-mini", "gpt-4o-mini-2024"):
        expected = ["t3", "t1"] if model == "fast" else ["t1"]
        assert await task_ids(engine, TaskFilter(model=model)) == expected
    window = TaskFilter(since=T0 + timedelta(seconds=2), until=T0 + timedelta(seconds=4))
    assert await task_ids(engine, window) == ["t3", "t2"]


async def test_task_pages_follow_the_cursor(engine: AsyncEngine) -> None:
    await seed(engine, TASKS)
    seen, after = [], None
    async with engine.connect() as conn:
        while True:
            page = await list_tasks(conn, ADMIN, TaskFilter(), after=after, limit=2)
            seen += [row.id for row in page.rows]
            if not page.has_more:
                assert page.next_cursor is None
                break
            after = NEWEST_FIRST.decode(page.next_cursor)
    assert seen == ["t5", "t4", "t3", "t2", "t1"]


async def test_a_runs_tasks_are_oldest_first(engine: AsyncEngine) -> None:
    await seed(engine, TASKS)
    async with engine.connect() as conn:
        first = await list_run_tasks(conn, ADMIN, "r1", limit=2)
        rest = await list_run_tasks(
            conn, ADMIN, "r1", after=OLDEST_FIRST.decode(first.next_cursor), limit=2
        )
        everything = await all_run_tasks(conn, ADMIN, "r1")
    assert [r.id for r in first.rows] == ["t1", "t2"] and first.has_more
    assert [r.id for r in rest.rows] == ["t5"] and not rest.has_more
    assert [r.id for r in everything] == ["t1", "t2", "t5"]


async def test_a_user_sees_only_its_own_tasks(engine: AsyncEngine) -> None:
    await seed(engine, TASKS)
    alice = Principal.for_user("alice")
    assert await task_ids(engine, principal=alice) == ["t5", "t4"]
    async with engine.connect() as conn:
        assert await get_task(conn, alice, "t1") is None
        assert (await get_task(conn, alice, "t5")).id == "t5"
        assert (await get_task(conn, ADMIN, "t1")).response_model == "gpt-4o-mini-2024"
        assert [r.id for r in await all_run_tasks(conn, alice, "r1")] == ["t5"]


async def test_task_cursors_and_windows_at_the_years_limits_are_queries(
    engine: AsyncEngine,
) -> None:
    await seed(engine, TASKS)
    everything = ["t5", "t4", "t3", "t2", "t1"]
    window = TaskFilter(since=EARLIEST_INSTANT, until=LATEST_INSTANT)
    assert await task_ids(engine, window) == everything
    assert await task_ids(engine, after=(LATEST_INSTANT, "")) == everything
    assert await task_ids(engine, after=(EARLIEST_INSTANT, "")) == []
    async with engine.connect() as conn:
        page = await list_run_tasks(conn, ADMIN, "r1", after=(EARLIEST_INSTANT, ""))
        assert [row.id for row in page.rows] == ["t1", "t2", "t5"]
        page = await list_run_tasks(conn, ADMIN, "r1", after=(LATEST_INSTANT, ""))
        assert page.rows == []


async def test_task_exists_finds_a_stored_task_whoever_owns_it(engine, records, probe) -> None:
    await probe.apply(records.make("stored", status="pending"), records.make("done", started=1))
    async with engine.connect() as conn:
        assert await task_exists(conn, "stored") and await task_exists(conn, "done")
        assert not await task_exists(conn, "never-seen")
