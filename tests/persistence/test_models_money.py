"""Money is exact in storage on both backends: NUMERIC on Postgres, integer units on SQLite."""

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.models import Run, Task, runs_table, tasks_table
from persistence.types import Money

AT = datetime(2026, 11, 21, 9, 5, tzinfo=UTC)
COSTS = [Decimal("0.0000000001"), Decimal("0.1"), Decimal("0.2"), Decimal("12345.6789012345")]


async def insert_run(engine: AsyncEngine, run_id: str = "r") -> None:
    async with engine.begin() as conn:
        row = {"id": run_id, "name": "n", "created_at": AT, "updated_at": AT}
        await conn.execute(insert(runs_table), [row | {"last_message_at": AT}])


async def test_task_costs_round_trip_and_sum_exactly(engine: AsyncEngine) -> None:
    await insert_run(engine)
    rows = [
        {
            "id": f"t{i}",
            "run_id": "r",
            "endpoint": "/v1/x",
            "status": "completed",
            "created_at": AT,
            "cost": cost,
        }
        for i, cost in enumerate(COSTS)
    ]
    async with engine.begin() as conn:
        await conn.execute(insert(tasks_table), rows)
        stored = (await conn.execute(select(Task.cost).order_by(Task.id))).scalars().all()
        total = (await conn.execute(select(func.sum(Task.cost)))).scalar_one()
    assert stored == COSTS
    assert total == sum(COSTS) == Decimal("12345.9789012346")


async def test_sql_increment_of_total_cost_is_exact(engine: AsyncEngine) -> None:
    await insert_run(engine)
    increment = (
        update(runs_table)
        .where(runs_table.c.id == "r")
        .values(total_cost=Run.total_cost + bindparam("c"))
    )
    async with engine.begin() as conn:
        await conn.execute(increment, [{"c": cost} for cost in COSTS])
        total = (await conn.execute(select(Run.total_cost))).scalar_one()
        plus = (
            await conn.execute(
                select(Run.total_cost + bindparam("x", type_=Money())), {"x": Decimal("0.3")}
            )
        ).scalar_one()
    assert total == Decimal("12345.9789012346")
    assert plus == Decimal("12346.2789012346")


async def test_missing_cost_stays_null_and_timestamps_are_utc(engine: AsyncEngine) -> None:
    await insert_run(engine)
    async with engine.begin() as conn:
        row = {"id": "t", "endpoint": "/v1/x", "status": "completed", "created_at": AT}
        await conn.execute(insert(tasks_table), [row])
        cost, created = (await conn.execute(select(Task.cost, Task.created_at))).one()
        run_total = (await conn.execute(select(Run.total_cost))).scalar_one()
    assert cost is None
    assert created == AT and created.tzinfo is not None
    assert run_total == Decimal(0)
