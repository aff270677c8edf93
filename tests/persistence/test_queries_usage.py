"""Usage report on SQLite and Postgres: the same rows, exact Decimal costs, and TTFT
percentiles within the histogram's bound of SQL's percentile_cont. The tasks are inserted as
rows and their rollups built by the backfill of migration 0007, so windows read both."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.models import runs_table, tasks_table
from persistence.queries.bounds import EARLIEST_INSTANT, LATEST_INSTANT
from persistence.queries.scope import Principal
from persistence.queries.usage import UsageRow, default_window, usage_report
from persistence.rollups import backfill
from persistence.ttft_histogram import RELATIVE_ERROR

ADMIN = Principal.admin()
DAY1 = datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC)
DAY2 = datetime(2026, 3, 2, 0, 0, 0, tzinfo=UTC)
SINCE = datetime(2026, 2, 1, tzinfo=UTC)


def test_default_window_is_the_last_30_days() -> None:
    now = datetime(2026, 3, 31, tzinfo=UTC)
    assert default_window(None, None, now) == (datetime(2026, 3, 1, tzinfo=UTC), None)
    until = datetime(2026, 2, 1, tzinfo=UTC)
    assert default_window(None, until, now) == (datetime(2026, 1, 2, tzinfo=UTC), until)
    assert default_window(SINCE, None, now) == (SINCE, None)


@pytest.mark.parametrize(
    "until",
    [EARLIEST_INSTANT, datetime(1, 1, 30, tzinfo=UTC), EARLIEST_INSTANT + timedelta(days=30)],
)
def test_default_window_never_starts_before_year_1(until: datetime) -> None:
    assert default_window(None, until) == (EARLIEST_INSTANT, until)


def task(task_id: str, at: datetime, **fields: Any) -> dict[str, Any]:
    row = {"id": task_id, "run_id": "r1", "endpoint": "/v1/chat/completions", "created_at": at}
    return row | {"status": "completed", "provider": "mock", "upstream_model": "m1"} | fields


TASKS = [
    task("a", DAY1, cost=Decimal("0.0000000001"), prompt_tokens=10, completion_tokens=5,
         total_tokens=15, time_to_first_token_ms=10.0, user_id="u1"),
    task("b", DAY1, cost=Decimal("0.1"), prompt_tokens=1, completion_tokens=1, total_tokens=2,
         time_to_first_token_ms=20.0, user_id="u1"),
    task("c", DAY1, status="error", time_to_first_token_ms=30.0, upstream_model="m2"),
    task("d", DAY1, status="timeout", time_to_first_token_ms=40.0, upstream_model="m2"),
    task("e", DAY2, cost=Decimal("0.2"), prompt_tokens=100, completion_tokens=50,
         total_tokens=150, provider="openai", run_id=None),
    task("f", DAY2, status="cancelled", upstream_model="m2", owner="alice"),
    task("old", SINCE - timedelta(seconds=1), cost=Decimal("9")),
]  # fmt: skip


async def seed(engine: AsyncEngine) -> None:
    run = {"id": "r1", "name": "r", "created_at": DAY1, "updated_at": DAY1}
    async with engine.begin() as conn:
        await conn.execute(insert(runs_table).values(run | {"last_message_at": DAY1}))
        for row in TASKS:
            await conn.execute(insert(tasks_table).values(row))
        await conn.run_sync(backfill)


async def report(engine: AsyncEngine, group_by: str, **kw: Any) -> list[UsageRow]:
    async with engine.connect() as conn:
        return await usage_report(
            conn, kw.pop("principal", ADMIN), group_by, kw.pop("since", SINCE), **kw
        )


async def test_usage_by_day_in_utc(engine: AsyncEngine) -> None:
    await seed(engine)
    day1, day2 = await report(engine, "day")
    assert day1 == UsageRow(
        key="2026-03-01",
        requests=4,
        errors=2,
        prompt_tokens=11,
        completion_tokens=6,
        total_tokens=17,
        cost=Decimal("0.1000000001"),
        ttft_p50_ms=pytest.approx(25.0, rel=RELATIVE_ERROR),
        ttft_p95_ms=pytest.approx(38.5, rel=RELATIVE_ERROR),
    )
    assert (day2.key, day2.requests, day2.errors, day2.cost) == ("2026-03-02", 2, 0, Decimal("0.2"))
    assert (day2.ttft_p50_ms, day2.ttft_p95_ms) == (None, None)


async def test_usage_by_model_is_by_upstream_model_most_requests_first(
    engine: AsyncEngine,
) -> None:
    await seed(engine)
    rows = await report(engine, "model")
    assert [(r.key, r.requests, r.errors) for r in rows] == [("m1", 3, 0), ("m2", 3, 2)]
    assert rows[0].cost == Decimal("0.3000000001")
    assert rows[1].cost is None  # nothing in the group is priced: unknown, not 0
    assert rows[1].ttft_p50_ms == pytest.approx(35.0, rel=RELATIVE_ERROR)


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        ("provider", [("mock", 5), ("openai", 1)]),
        ("user", [(None, 4), ("u1", 2)]),
        ("run", [("r1", 5), (None, 1)]),
    ],
)
async def test_usage_by_other_keys(engine: AsyncEngine, group_by: str, expected: list) -> None:
    await seed(engine)
    assert [(r.key, r.requests) for r in await report(engine, group_by)] == expected


async def test_usage_window_and_scope(engine: AsyncEngine) -> None:
    await seed(engine)
    rows = await report(engine, "day", since=SINCE - timedelta(days=1), until=DAY2)
    assert [(r.key, r.requests) for r in rows] == [("2026-01-31", 1), ("2026-03-01", 4)]
    alice = await report(engine, "day", principal=Principal.for_user("alice"))
    assert [(r.key, r.requests) for r in alice] == [("2026-03-02", 1)]


async def test_usage_over_every_representable_instant(engine: AsyncEngine) -> None:
    await seed(engine)
    rows = await report(engine, "day", since=EARLIEST_INSTANT, until=LATEST_INSTANT)
    assert sum(row.requests for row in rows) == len(TASKS)
    assert await report(engine, "day", since=EARLIEST_INSTANT, until=EARLIEST_INSTANT) == []
