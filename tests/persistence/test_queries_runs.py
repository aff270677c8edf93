"""Runs queries on SQLite and Postgres: filters, sorts, keyset pages, scoping, changes."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.models import runs_table, tasks_table
from persistence.queries.bounds import EARLIEST_INSTANT, LATEST_INSTANT, MONEY_LIMIT
from persistence.queries.cursor import encode_cursor
from persistence.queries.runs import (
    ORDERINGS,
    SORTS,
    RunFilter,
    get_run,
    list_runs,
    purge_run,
    set_run_status,
    update_run,
)
from persistence.queries.scope import Principal

ADMIN = Principal.admin()
DEFAULT = RunFilter()
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def run_row(run_id: str, minute: int = 0, **fields: Any) -> dict[str, Any]:
    at = T0 + timedelta(minutes=minute)
    row = {"id": run_id, "name": run_id, "created_at": at, "updated_at": at}
    return row | {"last_message_at": at, "metadata": {}, "tags": [], "settings": {}} | fields


def task_row(task_id: str, run_id: str | None, **fields: Any) -> dict[str, Any]:
    row = {"id": task_id, "run_id": run_id, "endpoint": "/v1/chat/completions"}
    return row | {"status": "completed", "created_at": T0} | fields


async def insert_rows(engine: AsyncEngine, runs: list[dict], tasks: list[dict] = ()) -> None:
    """One statement per row: rows have different keys (executemany would use the first's)."""
    async with engine.begin() as conn:
        for row in runs:
            await conn.execute(insert(runs_table).values(row))
        for row in tasks:
            await conn.execute(insert(tasks_table).values(row))


async def ids(engine: AsyncEngine, filters: RunFilter = DEFAULT, **options: Any) -> list[str]:
    async with engine.connect() as conn:
        page = await list_runs(conn, options.pop("principal", ADMIN), filters, **options)
    return [row.id for row in page.rows]


async def test_default_lists_active_runs_most_recent_first(engine: AsyncEngine) -> None:
    await insert_rows(
        engine,
        [
            run_row("a", 1),
            run_row("b", 3),
            run_row("c", 2, status="archived"),
            run_row("d", 4, status="deleted"),
        ],
    )
    assert await ids(engine) == ["b", "a"]
    assert await ids(engine, RunFilter(status="archived")) == ["c"]
    assert await ids(engine, RunFilter(status="deleted")) == ["d"]
    assert await ids(engine, RunFilter(status="all")) == ["d", "b", "c", "a"]


async def test_filters(engine: AsyncEngine) -> None:
    await insert_rows(
        engine,
        [
            run_row("r1", 1, name="Quarterly REPORT draft", is_starred=True, source_type="chat"),
            run_row("r2", 2, name="report_50%", user_id="alice", source_type="agent"),
            run_row("r3", 3, name="Other", user_id="bob"),
        ],
        [
            task_row("t1", "r1", model="fast", upstream_model="gpt-4o-mini"),
            task_row("t2", "r2", model="mock/x", upstream_model="x", response_model="x-2024"),
        ],
    )
    assert await ids(engine, RunFilter(starred=True)) == ["r1"]
    assert await ids(engine, RunFilter(starred=False)) == ["r3", "r2"]
    assert await ids(engine, RunFilter(q="report")) == ["r2", "r1"]
    assert await ids(engine, RunFilter(q="50%")) == ["r2"]
    assert await ids(engine, RunFilter(q="_")) == ["r2"]  # LIKE wildcards are literal
    assert await ids(engine, RunFilter(source_type="chat")) == ["r1"]
    assert await ids(engine, RunFilter(user_id="bob")) == ["r3"]
    for model in ("fast", "gpt-4o-mini"):
        assert await ids(engine, RunFilter(model=model)) == ["r1"]
    for model in ("mock/x", "x", "x-2024"):
        assert await ids(engine, RunFilter(model=model)) == ["r2"]
    assert await ids(engine, RunFilter(model="gpt")) == []
    window = RunFilter(since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=3))
    assert await ids(engine, window) == ["r2"]  # since inclusive, until exclusive


SORTED_RUNS = [
    run_row("a", 5, name="Beta", total_cost=Decimal("0.5"), total_tokens=10, message_count=3),
    run_row("b", 1, name="Alpha", total_cost=Decimal("0.0000000002"), total_tokens=99),
    run_row("c", 9, name="Gamma", total_cost=Decimal("0.5"), total_tokens=10, message_count=7),
    run_row("d", 5, name="Alpha", total_cost=Decimal("2"), total_tokens=0, message_count=3),
]
EXPECTED_ORDER = {
    "recent": ["c", "d", "a", "b"],
    "oldest": ["b", "a", "d", "c"],
    "name": ["b", "d", "a", "c"],
    "cost": ["d", "c", "a", "b"],
    "tokens": ["b", "c", "a", "d"],
    "messages": ["c", "d", "a", "b"],
}


@pytest.mark.parametrize("sort", SORTS)
async def test_each_sort_orders_with_ties_broken_by_id(engine: AsyncEngine, sort: str) -> None:
    await insert_rows(engine, SORTED_RUNS)
    assert await ids(engine, sort=sort) == EXPECTED_ORDER[sort]


@pytest.mark.parametrize("sort", SORTS)
async def test_pages_of_one_walk_every_sort_with_ties(engine: AsyncEngine, sort: str) -> None:
    await insert_rows(engine, SORTED_RUNS)
    seen, after = [], None
    async with engine.connect() as conn:
        while True:
            page = await list_runs(conn, ADMIN, RunFilter(), sort=sort, after=after, limit=1)
            seen += [row.id for row in page.rows]
            if not page.has_more:
                break
            after = ORDERINGS[sort].decode(page.next_cursor)
    assert seen == EXPECTED_ORDER[sort]


async def test_a_user_principal_sees_only_its_own_runs(engine: AsyncEngine) -> None:
    await insert_rows(
        engine,
        [run_row("mine", 1, owner="alice"), run_row("theirs", 2, owner="bob"), run_row("x", 3)],
        [task_row("t1", "theirs", owner="bob", model="m"), task_row("t2", "mine", owner="alice")],
    )
    alice = Principal.for_user("alice")
    assert await ids(engine, principal=alice) == ["mine"]
    assert await ids(engine, RunFilter(model="m"), principal=alice) == []
    async with engine.begin() as conn:
        assert await get_run(conn, alice, "theirs") is None
        assert await update_run(conn, alice, "theirs", {"name": "pwned"}) is None
        assert await set_run_status(conn, alice, "theirs", "deleted") is None
        assert await purge_run(conn, alice, "theirs") is False
        assert (await get_run(conn, ADMIN, "theirs")).name == "theirs"
        assert (await get_run(conn, alice, "mine")).id == "mine"


async def test_update_sets_fields_and_updated_at(engine: AsyncEngine) -> None:
    await insert_rows(engine, [run_row("r")])
    changes = {
        "name": "Renamed",
        "description": "about",
        "is_starred": True,
        "status": "archived",
        "tags": ["a", "b"],
        "metadata": {"k": [1, {"x": None}]},
    }
    async with engine.begin() as conn:
        run = await update_run(conn, ADMIN, "r", changes)
    assert {name: run._mapping[name] for name in changes} == changes
    assert run.updated_at > T0
    async with engine.begin() as conn:
        run = await update_run(conn, ADMIN, "r", {"description": None})
    assert run.description is None and run.name == "Renamed"


async def test_update_refuses_fields_that_are_not_editable(engine: AsyncEngine) -> None:
    await insert_rows(engine, [run_row("r")])
    async with engine.begin() as conn:
        with pytest.raises(ValueError):
            await update_run(conn, ADMIN, "r", {"total_cost": 0})


async def test_soft_delete_and_restore_keep_the_run(engine: AsyncEngine) -> None:
    await insert_rows(engine, [run_row("r")], [task_row("t", "r")])
    async with engine.begin() as conn:
        assert (await set_run_status(conn, ADMIN, "r", "deleted")).status == "deleted"
        assert (await set_run_status(conn, ADMIN, "r", "active")).status == "active"
        assert await set_run_status(conn, ADMIN, "nope", "active") is None


async def test_purge_removes_the_run_and_its_tasks_only(engine: AsyncEngine) -> None:
    await insert_rows(
        engine,
        [run_row("r"), run_row("keep")],
        [task_row("t1", "r"), task_row("t2", "r"), task_row("t3", "keep"), task_row("t4", None)],
    )
    async with engine.begin() as conn:
        assert await purge_run(conn, ADMIN, "r") is True
        assert await purge_run(conn, ADMIN, "r") is False
    async with engine.connect() as conn:
        left = (await conn.execute(select(tasks_table.c.id).order_by("id"))).scalars().all()
        runs = (await conn.execute(select(func.count()).select_from(runs_table))).scalar()
    assert left == ["t3", "t4"] and runs == 1


# Each sort column's extremes, as a cursor carries them: (lowest, highest).
COLUMN_LIMITS = {
    "recent": (EARLIEST_INSTANT.isoformat(), LATEST_INSTANT.isoformat()),
    "oldest": ("0001-01-01T00:00:00-14:00", "9999-12-31T23:59:59.999999+14:00"),
    "cost": (format(-MONEY_LIMIT, "f"), format(MONEY_LIMIT, "f")),
    "tokens": (-(2**63), 2**63 - 1),
    "messages": (-(2**31), 2**31 - 1),
}


@pytest.mark.parametrize("sort", sorted(COLUMN_LIMITS))
async def test_cursors_at_the_columns_limits_are_queries_on_both_backends(
    engine: AsyncEngine, sort: str
) -> None:
    """Past the lowest key every run follows (ascending), none past the highest; the reverse
    for largest-first sorts. Beyond the limits a cursor is refused (test_queries_cursor.py)."""
    await insert_rows(engine, [run_row("a", 1, total_cost=Decimal("0.5"), total_tokens=9)])
    ordering = ORDERINGS[sort]
    lowest, highest = (
        ordering.decode(encode_cursor(ordering.kind, [key, "a"])) for key in COLUMN_LIMITS[sort]
    )
    first, last = (highest, lowest) if ordering.descending else (lowest, highest)
    assert await ids(engine, sort=sort, after=first) == ["a"]
    assert await ids(engine, sort=sort, after=last) == []
